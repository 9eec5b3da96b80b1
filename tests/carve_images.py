"""Build the carving test cards: pictures kept, a folder of pictures deleted without a trace.

    python tests/carve_images.py OUTDIR   # photos/, fat32.img, ext4.img, ntfs.img

Each card holds the same pictures: a few kept in ``/DCIM/100KEEP`` and 42 JPEGs plus 4
PNGs in ``/DCIM/101GONE``, which is then deleted so that no name and no chain is left:

- FAT32 (mkfs.vfat + mtools): ``mdeltree`` frees the folder's FAT chains; its entry in
  ``DCIM`` and its own directory cluster are then zeroed (found with The Sleuth Kit first);
- ext4 (``mke2fs -d``): ``debugfs -w`` removes each file and the folder, then ``clri``
  clears each inode (extents gone, as a kernel delete leaves an ext4 inode);
- NTFS (mkntfs, ntfs-3g over FUSE; ``ntfscp`` cannot delete): the files are removed
  through the mount, then their MFT records are zeroed (no $FILE record names them).

The JPEGs are photo-like pictures (``sample_data/make_photos.py``'s drawing) of varied
sizes — 80×60 up to 4000×3000 (a few MB) — tagged by ``exiftool`` like a camera
(make, model, date taken, a few with an EXIF thumbnail).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DELETED_JPEGS = 42
DELETED_PNGS = 4
KEPT_JPEGS = 5
CARD_BYTES = 96 << 20


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is needed to build the carving test cards")
    return found


def _run(*cmd: str | Path, **kwargs: object) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([_tool(str(cmd[0])), *map(str, cmd[1:])], check=True,
                          capture_output=True, **kwargs)  # type: ignore[call-overload]


def _draw(size: tuple[int, int], seed: int) -> Image.Image:
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_photos",
                                                  REPO / "sample_data" / "make_photos.py")
    module = sys.modules.get("make_photos")
    if module is None:
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        sys.modules["make_photos"] = module
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module.draw_picture(size, seed)


def _size(index: int) -> tuple[int, int]:
    if index == 0:
        return (4000, 3000)
    if index == 1:
        return (2400, 1800)
    widths = (80, 160, 320, 480, 640, 800, 1024, 1280)
    width = widths[index % len(widths)]
    return (width, width * 3 // 4)


def make_pictures(outdir: Path) -> tuple[list[Path], list[Path]]:
    """(kept, deleted) picture files in ``outdir/keep`` and ``outdir/gone``."""
    keep, gone = outdir / "keep", outdir / "gone"
    keep.mkdir(parents=True, exist_ok=True)
    gone.mkdir(parents=True, exist_ok=True)
    kept: list[Path] = []
    deleted: list[Path] = []
    for index in range(KEPT_JPEGS + DELETED_JPEGS):
        folder, into = (keep, kept) if index < KEPT_JPEGS else (gone, deleted)
        number = index - KEPT_JPEGS if folder == gone else index
        path = folder / f"IMG_{number + (1 if folder == keep else 101):04d}.JPG"
        picture = _draw(_size(number if folder == gone else number + 2), 1000 + index)
        picture.save(path, "JPEG", quality=98 if number == 0 and folder == gone else 85)
        into.append(path)
    for index in range(DELETED_PNGS + 1):
        folder, into = (keep, kept) if index == 0 else (gone, deleted)
        path = folder / f"SCAN_{index:04d}.PNG"
        _draw((200 + 60 * index, 150 + 40 * index), 2000 + index).save(path, "PNG")
        into.append(path)
    jpegs = [p for p in kept + deleted if p.suffix == ".JPG"]
    _run("exiftool", "-q", "-overwrite_original", "-EXIF:Make=Canon",
         "-EXIF:Model=Canon EOS 80D", "-EXIF:DateTimeOriginal=2024:05:01 09:15:02",
         "-EXIF:Software=Firmware Version 1.0.3", *jpegs)
    for path in jpegs[:: 9]:  # a few with an EXIF thumbnail: a JPEG inside the JPEG
        thumb = outdir / "thumb.jpg"
        _draw((160, 120), 7).save(thumb, "JPEG", quality=70)
        _run("exiftool", "-q", "-overwrite_original", f"-ThumbnailImage<={thumb}", path)
        thumb.unlink()
    return kept, deleted


def _copy_tree(kept: list[Path], deleted: list[Path], root: Path) -> None:
    for folder, files in (("100KEEP", kept), ("101GONE", deleted)):
        (root / "DCIM" / folder).mkdir(parents=True, exist_ok=True)
        for path in files:
            shutil.copy2(path, root / "DCIM" / folder / path.name)


def _blank(path: Path) -> None:
    with path.open("wb") as fh:
        fh.truncate(CARD_BYTES)


def _zero(path: Path, offset: int, length: int) -> None:
    with path.open("r+b") as fh:
        fh.seek(offset)
        fh.write(bytes(length))


def _runs(image: Path, inode: int) -> list[tuple[int, int]]:
    import pytsk3

    fs = pytsk3.FS_Info(pytsk3.Img_Info(str(image)))
    block = fs.info.block_size
    out = []
    for attr in fs.open_meta(inode=inode):
        if int(attr.info.flags) & int(pytsk3.TSK_FS_ATTR_NONRES):
            out.extend((int(r.addr) * block, int(r.len) * block) for r in attr)
    return out


def _inode(image: Path, path: str) -> int:
    import pytsk3

    fs = pytsk3.FS_Info(pytsk3.Img_Info(str(image)))
    return int(fs.open(path).info.meta.addr)


def build_fat32(image: Path, kept: list[Path], deleted: list[Path], zero: bool = True) -> Path:
    """``zero=False``: the folder is only deleted (its entries and start clusters remain,
    so the walk finds the files as deleted files, and carving must not find them again)."""
    _blank(image)
    _run("mkfs.vfat", "-F", "32", "-s", "1", "-n", "CARD", image)
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
    _run("mmd", "-i", image, "::/DCIM", "::/DCIM/100KEEP", "::/DCIM/101GONE", env=env)
    _run("mcopy", "-i", image, *kept, "::/DCIM/100KEEP/", env=env)
    _run("mcopy", "-i", image, *deleted, "::/DCIM/101GONE/", env=env)
    gone_runs = _runs(image, _inode(image, "/DCIM/101GONE"))
    dcim_runs = _runs(image, _inode(image, "/DCIM"))
    _run("mdeltree", "-i", image, "::/DCIM/101GONE", env=env)
    if not zero:
        return image
    for offset, length in gone_runs:  # the folder's entries: no names left
        _zero(image, offset, length)
    with image.open("r+b") as fh:  # its own (now deleted) entry in DCIM, LFN parts too
        for offset, length in dcim_runs:
            fh.seek(offset)
            data = bytearray(fh.read(length))
            for at in range(0, len(data), 32):
                if data[at] == 0xE5:
                    data[at: at + 32] = bytes(32)
            fh.seek(offset)
            fh.write(data)
    return image


def build_ext4(image: Path, kept: list[Path], deleted: list[Path]) -> Path:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        _copy_tree(kept, deleted, root)
        _blank(image)
        _run("mke2fs", "-q", "-t", "ext4", "-b", "4096", "-d", root, image)
    inodes = {p.name: _inode(image, f"/DCIM/101GONE/{p.name}") for p in deleted}
    commands = [f"rm /DCIM/101GONE/{name}" for name in inodes]
    commands.append("rmdir /DCIM/101GONE")
    commands += [f"clri <{ino}>" for ino in inodes.values()]
    with tempfile.NamedTemporaryFile("w", suffix=".cmd", delete=False) as fh:
        fh.write("\n".join(commands) + "\n")
    try:
        _run("debugfs", "-w", "-f", fh.name, image)
    finally:
        os.unlink(fh.name)
    return image


def build_ntfs(image: Path, kept: list[Path], deleted: list[Path]) -> Path:
    import pytsk3

    _blank(image)
    _run("mkntfs", "-F", "-Q", "-q", "-L", "CARD", image)
    with tempfile.TemporaryDirectory() as tmp:
        mount = Path(tmp) / "mnt"
        mount.mkdir()
        _run("ntfs-3g", image, mount)
        try:
            _copy_tree(kept, deleted, mount)
        finally:
            subprocess.run(["sync"], check=False)
            _run("umount", mount)
    fs = pytsk3.FS_Info(pytsk3.Img_Info(str(image)))
    records = [int(fs.open(f"/DCIM/101GONE/{p.name}").info.meta.addr) for p in deleted]
    records.append(int(fs.open("/DCIM/101GONE").info.meta.addr))
    mft = _runs(image, 0)  # $MFT's own runs: where record N is
    with tempfile.TemporaryDirectory() as tmp:
        mount = Path(tmp) / "mnt"
        mount.mkdir()
        _run("ntfs-3g", image, mount)
        try:
            shutil.rmtree(mount / "DCIM" / "101GONE")
        finally:
            subprocess.run(["sync"], check=False)
            _run("umount", mount)
    for record in records:  # no $FILE record (and so no name or run list) is left
        _zero(image, _mft_offset(mft, record * 1024), 1024)
    return image


def _mft_offset(mft: list[tuple[int, int]], position: int) -> int:
    for offset, length in mft:
        if position < length:
            return offset + position
        position -= length
    raise ValueError("MFT record past the $MFT's runs")


def build_all(outdir: Path) -> dict[str, object]:
    outdir.mkdir(parents=True, exist_ok=True)
    kept, deleted = make_pictures(outdir / "photos")
    cards = {"fat32": build_fat32(outdir / "fat32.img", kept, deleted),
             "ext4": build_ext4(outdir / "ext4.img", kept, deleted),
             "ntfs": build_ntfs(outdir / "ntfs.img", kept, deleted)}
    return {"kept": kept, "deleted": deleted, **cards}


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(build_all(Path(sys.argv[1])))
