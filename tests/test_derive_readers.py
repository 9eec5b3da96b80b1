"""Container readers against the real tools that wrote their inputs.

Every archive here is made by its own tool (tar, gzip, bzip2, xz, lzma, 7z, cpio,
xorriso, gsf for OLE, img2pdf, Python's email and mailbox writers) from files we know;
each member's bytes read through ``Child.open`` must have the source file's MD5, and the
member names must match the tool's own listing (``tar tf``, ``7z l -slt``, ``cpio -it``,
``xorriso -find``, ``gsf list``, ``mailbox.mbox``). RAR is the exception: no free tool
writes it, see ``derive_helpers.rar4_stored``.
"""

from __future__ import annotations

import contextlib
import io
import mailbox
import random
import shutil
import struct
import subprocess
from email.message import EmailMessage
from pathlib import Path

import img2pdf
import pytest
from conftest import require_tool
from derive_helpers import (
    expand,
    md5,
    picture_files,
    rar4_stored,
    rar5_stored,
    read_all,
)
from PIL import Image, ImageChops
from pypdf import PdfReader, PdfWriter

from ingest.derive import SNIFF_BYTES, ContainerError, container_reader


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("derive")


@pytest.fixture(scope="module")
def pictures(work: Path) -> dict[str, Path]:
    return picture_files(work / "pictures")


@pytest.fixture(scope="module")
def tree(work: Path, pictures: dict[str, Path]) -> Path:
    """The files every archive holds: a photo, random data, a text, a symlink, a folder."""
    root = work / "tree"
    (root / "docs").mkdir(parents=True)
    shutil.copy(pictures["jpeg"], root / "photo.jpg")
    (root / "random.bin").write_bytes(random.Random(7).randbytes(300_000))
    (root / "docs" / "notes.txt").write_text("meeting at noon\n")
    (root / "empty").write_bytes(b"")
    (root / "link").symlink_to("photo.jpg")
    return root


def _sources(tree: Path) -> dict[str, str]:
    """MD5 of each regular file, by path relative to the tree."""
    return {str(p.relative_to(tree)): md5(p.read_bytes())
            for p in sorted(tree.rglob("*")) if p.is_file() and not p.is_symlink()}


def _run(*args: str | Path, cwd: Path | None = None) -> str:
    result = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True,
                            check=True)
    return result.stdout.decode()


def _files(got: list, strip: str = "") -> dict[str, str]:
    """{inner path without ``strip``: MD5} of the readable members."""
    return {child.step.inner.removeprefix(strip): md5(data)
            for child, data in got if data is not None}


# ---------------------------------------------------------------- tar and compressors

@pytest.mark.parametrize("fmt", ["gnu", "ustar", "pax", "v7"])
def test_tar_members_match_the_source_and_tar_listing(tree: Path, work: Path, fmt: str):
    archive = work / f"tree-{fmt}.tar"
    _run(require_tool("tar"), f"--format={fmt}", "-cf", archive, ".", cwd=tree)
    reader, got = expand(archive)
    assert reader.method == "tar"
    listing = [name.rstrip("/") for name in _run("tar", "-tf", archive).split()]
    assert [c.step.inner for c, _ in got] == listing  # tarfile drops a folder's "/"
    assert _files(got, "./") == _sources(tree)
    links = {c.name: c.notes for c, _ in got if c.open is None and c.kind == "file"}
    assert links == {"link": ("symlink", "link -> photo.jpg")}
    assert {c.name for c, _ in got if c.kind == "directory"} >= {"docs"}


def test_damaged_tar_yields_what_it_read_then_says_so(tree: Path, work: Path):
    archive = work / "damaged.tar"
    _run("tar", "-cf", archive, "photo.jpg", "random.bin", cwd=tree)
    data = bytearray(archive.read_bytes())
    second = 512 + ((len((tree / "photo.jpg").read_bytes()) + 511) // 512) * 512
    data[second + 148: second + 156] = b"9999999\0"  # the second header's checksum
    reader = container_reader(bytes(data[:SNIFF_BYTES]))
    assert reader is not None and reader.method == "tar"
    got = []
    with pytest.raises(ContainerError, match="unreadable header"):
        for child in reader.children(io.BytesIO(bytes(data)), len(data), "damaged.tar"):
            got.append((child.name, md5(read_all(child.open()))))
    assert got == [("photo.jpg", md5((tree / "photo.jpg").read_bytes()))]


@pytest.mark.parametrize(("tool", "suffix", "method", "name"), [
    ("gzip", ".gz", "gzip", "tree.tar"),  # FNAME from the header
    ("bzip2", ".bz2", "bzip2", "tree.tar"),
    ("xz", ".xz", "xz", "tree.tar"),
    ("lzma", ".lzma", "lzma", "tree.tar"),
])
def test_single_stream_compressors_give_the_original(tree: Path, work: Path, tool: str,
                                                     suffix: str, method: str, name: str):
    plain = work / "tree.tar"
    _run("tar", "-cf", plain, ".", cwd=tree)
    packed = work / ("tree.tar" + suffix)
    packed.write_bytes(subprocess.run([require_tool(tool), "-c", plain], check=True,
                                      capture_output=True).stdout)
    reader, got = expand(packed)
    assert reader.method == method
    assert len(got) == 1
    child, data = got[0]
    assert (child.name, md5(data), child.packed_size) == (
        name, md5(plain.read_bytes()), packed.stat().st_size)
    assert container_reader(data[:SNIFF_BYTES]).method == "tar"  # the next round's reader


def test_gzip_name_header_absent_and_several_members(work: Path):
    first, second = b"first member\n" * 1000, random.Random(8).randbytes(50_000)
    parts = []
    for index, data in enumerate((first, second)):
        path = work / f"part{index}"
        path.write_bytes(data)
        parts.append(subprocess.run(["gzip", "-n", "-c", path], check=True,
                                    capture_output=True).stdout)
    packed = work / "joined.log.gz"
    packed.write_bytes(b"".join(parts))
    _, got = expand(packed)
    assert [(c.name, c.notes, md5(d)) for c, d in got] == [("joined.log", (),
                                                            md5(first + second))]


def test_truncated_gzip_raises_container_error_while_reading(tree: Path, work: Path):
    packed = work / "cut.gz"
    data = subprocess.run(["gzip", "-c", tree / "random.bin"], check=True,
                          capture_output=True).stdout
    packed.write_bytes(data[: len(data) // 2])
    with packed.open("rb") as fh:
        child = next(container_reader(fh.read(SNIFF_BYTES)).children(fh, len(data) // 2, "c"))
        with pytest.raises(ContainerError):
            read_all(child.open())


def test_raw_lzma_is_sniffed_strictly():
    rng = random.Random(9)
    for _ in range(200):
        fake = b"\x5d\x00\x00\x80\x00" + b"\xff" * 8 + rng.randbytes(2000)
        reader = container_reader(fake)
        assert reader is None or reader.method != "lzma"


# ---------------------------------------------------------------- libarchive formats

def _seven_zip_listing(archive: Path) -> dict[str, str]:
    """Path -> Attributes from `7z l -slt` (the archive's own entry first is skipped)."""
    entries, current = {}, {}
    for line in _run(require_tool("7z"), "l", "-slt", archive).splitlines()[1:]:
        if " = " in line:
            key, value = line.split(" = ", 1)
            current[key] = value
        elif not line.strip() and "Path" in current:
            entries[current["Path"]] = current.get("Attributes", "")
            current = {}
    if "Path" in current:
        entries[current["Path"]] = current.get("Attributes", "")
    entries.pop(str(archive), None)
    return entries


def test_7z_members_match_the_source_and_7z_listing(tree: Path, work: Path):
    archive = work / "tree.7z"
    _run(require_tool("7z"), "a", "-bd", archive, ".", cwd=tree)
    reader, got = expand(archive)
    assert reader.method == "7z"
    assert {c.step.inner.rstrip("/") for c, _ in got} == set(_seven_zip_listing(archive))
    assert _files(got) == _sources(tree)
    assert {c.name: c.notes for c, _ in got if c.name == "link"} == {
        "link": ("symlink", "link -> photo.jpg")}


def test_7z_members_are_readable_only_in_order(tree: Path, work: Path):
    archive = work / "order.7z"
    _run("7z", "a", "-bd", archive, "photo.jpg", "random.bin", cwd=tree)
    with archive.open("rb") as fh:
        children = container_reader(fh.read(SNIFF_BYTES)).children(
            fh, archive.stat().st_size, "order.7z")
        first = next(children)
        stream = first.open()
        stream.read(100)
        second = next(children)
        with pytest.raises(ContainerError, match="next member"):
            stream.read(100)
        assert md5(read_all(second.open())) == md5(
            (tree / second.step.inner).read_bytes())


def test_encrypted_7z_is_recorded_not_read(tree: Path, work: Path):
    archive = work / "secret.7z"
    _run("7z", "a", "-bd", "-pSECRET", archive, "docs", "photo.jpg", cwd=tree)
    seen = {}
    with archive.open("rb") as fh:
        for child in container_reader(fh.read(SNIFF_BYTES)).children(
                fh, archive.stat().st_size, "secret.7z"):
            seen[child.step.inner] = (child.kind, child.open is None, child.notes)
    assert seen == {"docs/": ("directory", True, ()),
                    "docs/notes.txt": ("file", True, ("encrypted",)),
                    "photo.jpg": ("file", True, ("encrypted",))}
    headers = work / "secret-headers.7z"
    _run("7z", "a", "-bd", "-pSECRET", "-mhe=on", headers, "photo.jpg", cwd=tree)
    with pytest.raises(ContainerError, match="encrypted"):
        expand(headers)


@pytest.mark.parametrize("fmt", ["bin", "odc", "newc", "crc"])
def test_cpio_members_match_the_source_and_cpio_listing(tree: Path, work: Path, fmt: str):
    archive = work / f"tree-{fmt}.cpio"
    names = _run("find", ".", cwd=tree)
    with archive.open("wb") as out:
        subprocess.run([require_tool("cpio"), "-o", "-H", fmt], cwd=tree, input=names.encode(),
                       stdout=out, stderr=subprocess.DEVNULL, check=True)
    reader, got = expand(archive)
    assert reader.method == "cpio"
    listing = subprocess.run(["cpio", "-it"], stdin=archive.open("rb"), capture_output=True,
                             check=True).stdout.decode().split()
    assert [c.step.inner for c, _ in got] == listing
    assert _files(got) == _sources(tree)


def test_iso9660_members_match_the_source_and_xorriso_listing(tree: Path, work: Path):
    image = work / "tree.iso"
    _run(require_tool("xorriso"), "-as", "mkisofs", "-R", "-J", "-o", image, tree)
    reader, got = expand(image)
    assert reader.method == "iso9660"
    listing = {line.strip("'") for line in
               _run("xorriso", "-indev", image, "-find", "/").split() if line != "'/'"}
    assert {"/" + c.step.inner for c, _ in got if c.step.inner != "."} == listing
    assert _files(got) == _sources(tree)


@pytest.mark.parametrize("build", [rar4_stored, rar5_stored])
def test_rar_members_are_read(build, pictures: dict[str, Path]):
    members = {"photos/photo.jpg": pictures["jpeg"].read_bytes(), "notes.txt": b"noon\n"}
    data = build(members)
    reader = container_reader(data)
    assert reader is not None and reader.method == "rar"
    got = {c.step.inner: md5(read_all(c.open()))
           for c in reader.children(io.BytesIO(data), len(data), "x.rar")}
    assert got == {name: md5(content) for name, content in members.items()}


# ---------------------------------------------------------------- OLE compound files

def _ole10_native(label: str, source: str, data: bytes) -> bytes:
    """An embedded "Package" object's stream, as MS-OLEDS 2.3.6 lays it out."""
    temp = source.encode("cp1252") + b"\0"
    body = (struct.pack("<H", 2) + label.encode("cp1252") + b"\0" + source.encode("cp1252")
            + b"\0" + struct.pack("<II", 0x00030000, len(temp)) + temp
            + struct.pack("<I", len(data)) + data)
    return struct.pack("<I", len(body)) + body


def test_ole_streams_and_embedded_package(work: Path, pictures: dict[str, Path]):
    root = work / "ole-src"
    package = root / "ObjectPool" / "_1234"
    package.mkdir(parents=True)
    word = random.Random(10).randbytes(70_000)  # big: read along the FAT chain
    (root / "WordDocument").write_bytes(word)
    (root / "Data").write_bytes(pictures["jpeg"].read_bytes())
    (root / "\x05SummaryInformation").write_bytes(b"\xfe\xff" + bytes(100))  # mini stream
    png = pictures["png"].read_bytes()
    (package / "\x01Ole10Native").write_bytes(
        _ole10_native("holiday.png", "C:\\Users\\a\\holiday.png", png))
    attach = root / "__attach_version1.0_#00000000"
    attach.mkdir()
    (attach / "__substg1.0_37010102").write_bytes(pictures["gif"].read_bytes())
    (attach / "__substg1.0_3707001F").write_bytes("party.gif".encode("utf-16-le"))
    document = work / "doc.doc"
    _run(require_tool("gsf"), "createole", document, *sorted(p.name for p in root.iterdir()),
         cwd=root)
    reader, got = expand(document)
    assert reader.method == "ole"
    listing = [line.split()[-1] for line in _run("gsf", "list", document).splitlines()[2:]]
    assert {c.step.inner for c, _ in got} == set(listing)
    by_inner = {c.step.inner: (c, data) for c, data in got}
    assert md5(by_inner["WordDocument"][1]) == md5(word)
    assert md5(by_inner["WordDocument"][1]) == md5(
        subprocess.run(["gsf", "cat", document, "WordDocument"], capture_output=True,
                       check=True).stdout)
    assert md5(by_inner["Data"][1]) == md5(pictures["jpeg"].read_bytes())
    child, data = by_inner["ObjectPool/_1234/\x01Ole10Native"]
    assert (child.name, md5(data), child.size) == ("holiday.png", md5(png), len(png))
    child, data = by_inner["__attach_version1.0_#00000000/__substg1.0_37010102"]
    assert (child.name, md5(data)) == ("party.gif", md5(pictures["gif"].read_bytes()))
    assert by_inner["ObjectPool"][0].kind == "directory"


# ---------------------------------------------------------------- PDF

def test_pdf_jpegs_are_the_embedded_files_byte_for_byte(work: Path, pictures: dict[str, Path]):
    document = work / "album.pdf"
    sources = [pictures["jpeg"], pictures["jpeg-progressive"], pictures["png"]]
    document.write_bytes(img2pdf.convert([str(p) for p in sources]))
    reader, got = expand(document)
    assert reader.method == "pdf"
    assert [c.step.inner for c, _ in got] == ["page 1/Im0", "page 2/Im0", "page 3/Im0"]
    assert [md5(d) for _, d in got[:2]] == [md5(p.read_bytes()) for p in sources[:2]]
    assert got[0][0].name == "page1-Im0.jpg" and got[0][0].notes == ()
    png_child, png_data = got[2]
    assert png_child.notes == ("converted to PNG",) and png_child.name.endswith(".png")
    with Image.open(io.BytesIO(png_data)) as ours, Image.open(sources[2]) as source:
        assert ImageChops.difference(ours.convert("RGB"), source.convert("RGB")).getbbox() \
            is None


def test_pdf_image_used_on_several_pages_is_given_once(work: Path, pictures: dict[str, Path]):
    single = work / "single.pdf"
    single.write_bytes(img2pdf.convert([str(pictures["jpeg"])]))
    writer = PdfWriter()
    page = PdfReader(single).pages[0]
    for _ in range(3):
        writer.add_page(page)
    repeated = work / "repeated.pdf"
    with repeated.open("wb") as out:
        writer.write(out)
    assert len(PdfReader(repeated).pages) == 3
    _, got = expand(repeated)
    assert [(c.step.inner, md5(d)) for c, d in got] == [
        ("page 1/Im0", md5(pictures["jpeg"].read_bytes()))]


# ---------------------------------------------------------------- e-mail and mbox

def _message(pictures: dict[str, Path], subject: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Alice <alice@example.org>"
    message["To"] = "bob@example.org"
    message["Subject"] = subject
    message["Message-ID"] = f"<{subject.replace(' ', '.')}@example.org>"
    message.set_content("See the photo.\nFrom here on, it is all pictures.\n")
    message.add_alternative("<p>See <img src='cid:logo'></p>", subtype="html")
    message.get_payload()[1].add_related(pictures["png"].read_bytes(), "image", "png",
                                         cid="<logo>")
    message.add_attachment(pictures["jpeg"].read_bytes(), maintype="image", subtype="jpeg",
                           filename="IMG_0001.JPG")
    message.add_attachment("a,b\n1,2\n", subtype="csv", filename="table.csv")
    return message


def test_eml_attachments_and_inline_pictures(work: Path, pictures: dict[str, Path]):
    outer = _message(pictures, "holiday photos")
    forwarded = _message(pictures, "forwarded")
    outer.add_attachment(forwarded)
    path = work / "message.eml"
    path.write_bytes(outer.as_bytes())
    reader, got = expand(path)
    assert reader.method == "email"
    found = [(c.step.inner, c.name, c.notes) for c, _ in got]
    # multipart/mixed: 1 alternative (1.1 plain, 1.2 related: 1.2.1 html, 1.2.2 png),
    # 2 the JPEG, 3 the CSV, 4 the forwarded message; text bodies are not children
    assert found == [
        ("part 1.2.2/part-1.2.2.png", "part-1.2.2.png", ("inline",)),
        ("part 2/IMG_0001.JPG", "IMG_0001.JPG", ()),
        ("part 3/table.csv", "table.csv", ()),
        ("part 4/part-4.eml", "part-4.eml", ("re-serialised by the e-mail parser",)),
    ]
    data = [d for _, d in got]
    assert md5(data[0]) == md5(pictures["png"].read_bytes())
    assert md5(data[1]) == md5(pictures["jpeg"].read_bytes())
    assert data[2] == b"a,b\n1,2\n"
    nested = container_reader(data[3][:SNIFF_BYTES])
    assert nested is not None and nested.method == "email"
    inner = list(nested.children(io.BytesIO(data[3]), len(data[3]), "part-4.eml"))
    assert [md5(read_all(c.open())) for c in inner][:2] == [
        md5(pictures["png"].read_bytes()), md5(pictures["jpeg"].read_bytes())]


def test_mbox_messages_are_the_ranges_mailbox_reads(work: Path, pictures: dict[str, Path]):
    path = work / "inbox.mbox"
    box = mailbox.mbox(path)
    for subject in ("one", "two", "three"):
        box.add(_message(pictures, subject))
    box.flush()
    box.close()
    expected = [box_bytes for box_bytes in _mailbox_bytes(path)]
    reader, got = expand(path)
    assert reader.method == "mbox"
    assert [c.step.inner for c, _ in got] == ["message 1", "message 2", "message 3"]
    assert [md5(d) for _, d in got] == [md5(b) for b in expected]
    raw = path.read_bytes()
    for child, data in got:
        assert raw[child.step.offset: child.step.offset + child.step.length] == data
    assert container_reader(got[1][1][:SNIFF_BYTES]).method == "email"


def _mailbox_bytes(path: Path) -> list[bytes]:
    box = mailbox.mbox(path, create=False)
    try:
        return [box.get_bytes(key) for key in box.iterkeys()]
    finally:
        box.close()


# ---------------------------------------------------------------- recognition

def test_each_reader_claims_only_its_own_format(work: Path, tree: Path):
    rng = random.Random(11)
    assert container_reader(rng.randbytes(SNIFF_BYTES)) is None
    assert container_reader(b"Dear Bob,\nFrom: the minutes\n" * 100) is None
    assert container_reader((tree / "photo.jpg").read_bytes()[:SNIFF_BYTES]) is None
    assert container_reader(b"From: a@example.org\nSubject: hi\n\nbody") is None  # 1 strong
    assert container_reader(
        b"Received: from x\nFrom: a@example.org\nSubject: hi\n\nbody").method == "email"


def test_pdf_images_inside_form_xobjects(work: Path, pictures: dict[str, Path]):
    # reportlab (a real PDF writer, already a dependency) draws one JPEG inside a form
    # XObject shown on two pages, and another JPEG directly on page 1.
    from reportlab.pdfgen import canvas

    document = work / "forms.pdf"
    drawing = canvas.Canvas(str(document))
    drawing.beginForm("logo")
    drawing.drawImage(str(pictures["jpeg"]), 0, 0, 160, 120)
    drawing.endForm()
    drawing.doForm("logo")
    drawing.drawImage(str(pictures["jpeg-progressive"]), 200, 200, 100, 75)
    drawing.showPage()
    drawing.doForm("logo")
    drawing.showPage()
    drawing.save()
    _, got = expand(document)
    found = {c.step.inner.split("/", 1)[1].startswith("FormXob.logo/"): md5(d) for c, d in got}
    assert len(got) == 2 and all(c.step.inner.startswith("page 1/") for c, _ in got)
    assert found == {True: md5(pictures["jpeg"].read_bytes()),
                     False: md5(pictures["jpeg-progressive"].read_bytes())}


def test_7z_member_with_a_bad_crc_is_an_error_not_wrong_bytes(tree: Path, work: Path):
    archive = work / "stored.7z"
    _run("7z", "a", "-bd", "-mx0", archive, "random.bin", cwd=tree)  # stored: bytes as-is
    data = bytearray(archive.read_bytes())
    source = (tree / "random.bin").read_bytes()
    at = data.find(source[1000:1032])
    assert at > 0
    data[at] ^= 0xFF
    reader = container_reader(bytes(data[:SNIFF_BYTES]))
    children = reader.children(io.BytesIO(bytes(data)), len(data), "stored.7z")
    child = next(children)
    with pytest.raises(ContainerError, match="CRC"):
        read_all(child.open())


def test_7z_member_stream_after_the_archive_is_closed_raises(tree: Path, work: Path):
    # libarchive frees the archive when the generator ends; a member stream kept past that
    # must raise, not read freed memory (a segmentation fault, before the guard).
    archive = work / "closed.7z"
    _run("7z", "a", "-bd", archive, "random.bin", cwd=tree)
    data = archive.read_bytes()
    children = container_reader(data).children(io.BytesIO(data), len(data), "closed.7z")
    stream = next(children).open()
    children.close()
    with pytest.raises(ContainerError, match="next member"):
        stream.read(10)


def test_pdf_attachments_follow_the_pages(work: Path, pictures: dict[str, Path]):
    base = work / "plain.pdf"
    base.write_bytes(img2pdf.convert([str(pictures["png"])]))
    document = work / "attached.pdf"
    _run(require_tool("qpdf"), base, "--add-attachment", pictures["jpeg"], "--key=IMG_0001.JPG",
         "--mimetype=image/jpeg", "--", document)
    listing = _run("qpdf", "--list-attachments", document)
    assert listing.startswith("IMG_0001.JPG -> ")
    _, got = expand(document)
    assert [(c.step.inner, c.name, c.notes) for c, _ in got] == [
        ("page 1/Im0", "page1-Im0.png", ("converted to PNG",)),
        ("attachment 1/IMG_0001.JPG", "IMG_0001.JPG", ("attachment",))]
    assert md5(got[1][1]) == md5(pictures["jpeg"].read_bytes())


def test_deeply_nested_multiparts_stop_with_an_error():
    message = b"From: a@example.org\nMessage-ID: <x@example.org>\nMIME-Version: 1.0\n"
    body = b"Content-Type: image/gif\nContent-Transfer-Encoding: base64\n\nR0lGODlh\n"
    for level in range(40):
        boundary = b"b%d" % level
        body = (b"Content-Type: multipart/mixed; boundary=" + boundary + b"\n\n--" + boundary
                + b"\n" + body + b"\n--" + boundary + b"--\n")
    data = message + body
    reader = container_reader(data)
    assert reader is not None and reader.method == "email"
    with pytest.raises(ContainerError, match="nested over"):
        list(reader.children(io.BytesIO(data), len(data), "deep.eml"))


def test_damaged_containers_raise_only_container_errors(tree: Path, work: Path,
                                                        pictures: dict[str, Path]):
    # Random byte changes and cuts of one input per reader: each reader must end with
    # members or a ContainerError, never another exception (the worker's contract). This
    # found a leaked LZMAError, tar's ReadError and an OLE time overflow before they were
    # caught.
    inputs = {}
    _run("tar", "-cf", work / "f.tar", "photo.jpg", "docs", cwd=tree)
    inputs["tar"] = (work / "f.tar").read_bytes()
    for tool in ("gzip", "xz", "lzma", "bzip2"):
        inputs[tool] = subprocess.run([tool, "-c", work / "f.tar"], check=True,
                                      capture_output=True).stdout
    _run("7z", "a", "-bd", work / "f.7z", "photo.jpg", "docs", cwd=tree)
    inputs["7z"] = (work / "f.7z").read_bytes()
    inputs["rar"] = rar5_stored({"a.jpg": pictures["jpeg"].read_bytes()})
    inputs["pdf"] = img2pdf.convert([str(pictures["jpeg"])])
    message = _message(pictures, "fuzz")
    inputs["email"] = message.as_bytes()
    _run("gsf", "createole", work / "f.ole", "photo.jpg", "random.bin", cwd=tree)
    inputs["ole"] = (work / "f.ole").read_bytes()
    box = mailbox.mbox(work / "f.mbox")
    box.add(message)
    box.add(message)
    box.close()
    inputs["mbox"] = (work / "f.mbox").read_bytes()
    rng = random.Random(13)
    for method, original in inputs.items():
        assert container_reader(original[:SNIFF_BYTES]).method == method
        for _ in range(25):
            data = bytearray(original)
            for _ in range(rng.randrange(1, 12)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            if rng.random() < 0.3:
                data = data[: rng.randrange(1, len(data))]
            data = bytes(data)
            reader = container_reader(data[:SNIFF_BYTES])
            if reader is None:
                continue
            try:
                for child in reader.children(io.BytesIO(data), len(data), "f"):
                    if child.open is not None:
                        with contextlib.suppress(ContainerError):
                            read_all(child.open())
            except ContainerError:
                pass
