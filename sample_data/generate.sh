#!/usr/bin/env bash
# Build sample_data/sample.img.gz and the known-hash lists, deterministically.
#
# The image is a 60 MiB raw disk with an MBR:
#   partition 1  FAT32 (0x0c) "CAMERA" card, photos with EXIF, one photo deleted
#   partition 2  extended (0x05) holding
#   partition 5  ext4 (0x83) "DATA": documents, odd names, a symlink, a deleted file, and
#                altered copies of "known images" (resized, recompressed, mirrored, PNG)
# Every id, seed and timestamp is fixed, so a re-run on the same machine gives the
# same bytes (check: run twice, compare sha256sum sample.img.gz). A different Pillow,
# libjpeg, exiftool or e2fsprogs may change bytes; the layout and names stay.
#
# Needs: dosfstools mtools e2fsprogs fdisk libimage-exiftool-perl coreutils gzip,
# and Python with Pillow (the project venv). See README.md.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${PYTHON:-$HERE/../.venv/bin/python}"
[[ -x "$PYTHON" ]] || PYTHON="$(command -v python3)"

for tool in mkfs.vfat mcopy mdel mke2fs debugfs e2fsck sfdisk exiftool gzip md5sum sha1sum sha256sum; do
    command -v "$tool" >/dev/null || { echo "generate.sh: $tool is required" >&2; exit 1; }
done

# Fixed clocks and ids. TZ matters: FAT stores local time, mtools converts with TZ.
export TZ=UTC LC_ALL=C
export MTOOLS_SKIP_CHECK=1
export E2FSPROGS_FAKE_TIME=1733011200          # 2024-12-01 00:00:00 UTC: mkfs/copy time
export SOURCE_DATE_EPOCH=$E2FSPROGS_FAKE_TIME
umask 022

SECTOR=512
DISK_MIB=60
FAT_START=2048                  # 1 MiB
FAT_SECTORS=81920               # 40 MiB
EXT_START=83968                 # extended partition: 41 MiB .. 60 MiB
EXT_SECTORS=$(( DISK_MIB * 2048 - EXT_START ))
LOG_START=86016                 # logical partition 5: 42 MiB, 16 MiB long
LOG_SECTORS=32768
DISK_ID=0x45584849              # "EXHI"
FAT_VOLID=45584849
EXT_UUID=6578ce1b-5a3d-4c5e-9b1a-000000000005
EXT_HASH_SEED=6578ce1b-5a3d-4c5e-9b1a-0000000000a5

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
SRC="$WORK/src"

# Set a path's mtime/atime (no dereference, so symlinks keep their own).
stamp() { touch -h -d "$1" -- "${@:2}"; }

# ---------------------------------------------------------------- media
"$PYTHON" "$HERE/make_photos.py" "$SRC"      # photos carry their DateTimeOriginal as mtime

# ---------------------------------------------------------------- camera card (FAT32)
CARD="$WORK/card"
mkdir -p "$CARD/DCIM/100EXHIB"
stamp "2024-05-01 09:00:00" "$CARD/DCIM" "$CARD/DCIM/100EXHIB"

FAT="$WORK/fat.img"
# -i after --invariant: the invariant mode would otherwise force id 0x1234abcd.
mkfs.vfat -C "$FAT" $(( FAT_SECTORS / 2 )) -F 32 -s 1 -n CAMERA \
    --invariant -i "$FAT_VOLID" -h "$FAT_START" >/dev/null
# The (empty) folders with -s -m keep their times; mmd would stamp them with "now".
mcopy -s -m -i "$FAT" "$CARD/DCIM" ::/
# Photos one by one in name order, as a camera writes them (mcopy -s follows readdir
# order, which differs between host filesystems).
for photo in "$SRC"/camera/IMG_000?.JPG; do
    mcopy -m -i "$FAT" "$photo" ::/DCIM/100EXHIB/
done
# The deleted photo: its entry gets 0xE5, its clusters are freed but not wiped.
mdel -i "$FAT" ::/DCIM/100EXHIB/IMG_0007.JPG

# ---------------------------------------------------------------- data partition (ext4)
DATA="$WORK/data"
mkdir -p "$DATA/Documents/notes/2024" "$DATA/Pictures" "$DATA/Downloads" \
         "$DATA/Archive/a/b/c/d/e" "$DATA/Saved"

cat >"$DATA/Documents/report.txt" <<'EOF'
Quarterly report - exhibit sample data

All figures in this file are invented for testing a forensic pipeline.
Revenue rose 4% over the quarter; costs were flat.
EOF
cat >"$DATA/Documents/notes/2024/meeting.md" <<'EOF'
# Meeting 2024-03-12

- Attendees: A. Example, B. Sample
- Decision: ship the camera card photos to the archive.
- Action: move the old drafts to Archive/.
EOF
cat >"$DATA/Documents/budget.csv" <<'EOF'
item,amount,currency
camera,899.00,EUR
memory card,24.50,EUR
"travel, train",120.00,EUR
EOF
cat >"$DATA/Documents/secret.txt" <<'EOF'
This file is deleted after the filesystem is built.
Its name and content stay on disk for recovery tests.
EOF
printf 'Le caf\xe9 est ferm\xe9 le lundi.\n' >"$DATA/Documents/"$'caf\xe9_latin1.txt'
ln -s report.txt "$DATA/Documents/latest.txt"
cp "$SRC/data/holiday.png" "$SRC/data/vacation.txt" "$DATA/Pictures/"
# Altered copies of the known images (the originals stay off the image; see below).
cp "$SRC"/saved/* "$DATA/Saved/"
printf '<!doctype html><title>x</title><p>hostile file name test</p>\n' \
    >"$DATA/Downloads/<img src=x onerror=alert(1)>.html"
printf 'a,b\n1,2\n' >"$DATA/Downloads/=cmd|' calc'!A0.csv"
printf 'Five folders down.\n' >"$DATA/Archive/a/b/c/d/e/deep.txt"

# A small valid PDF, cross-reference offsets computed rather than hand-counted.
"$PYTHON" - "$DATA/Documents/invoice.pdf" <<'EOF'
import sys

stream = b"BT /F1 18 Tf 72 720 Td (Invoice 2024-0042: 899.00 EUR) Tj ET"
objects = [
    b"<< /Type /Catalog /Pages 2 0 R >>",
    b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
    b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
    b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
    b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
    b"<< /Title (Invoice 2024-0042) /Producer (exhibit sample_data) "
    b"/CreationDate (D:20240315100000Z) >>",
]
out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
offsets = []
for number, body in enumerate(objects, start=1):
    offsets.append(len(out))
    out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
xref = len(out)
out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
out += b"".join(b"%010d 00000 n \n" % off for off in offsets)
out += b"trailer\n<< /Size %d /Root 1 0 R /Info 6 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
    len(objects) + 1, xref)
with open(sys.argv[1], "wb") as fh:
    fh.write(out)
EOF

# Fixed times for everything; directories last (adding files changes their mtime).
find "$DATA" -type f -exec touch -d "2024-03-15 10:00:00" {} +
stamp "2024-03-12 17:30:00" "$DATA/Documents/notes/2024/meeting.md"
stamp "2024-06-01 08:00:00" "$DATA/Documents/latest.txt"
find "$DATA" -depth -type d -exec touch -d "2024-06-01 08:00:00" {} +

EXT="$WORK/ext.img"
truncate -s $(( LOG_SECTORS * SECTOR )) "$EXT"
mke2fs -q -F -t ext4 -b 1024 -L DATA -U "$EXT_UUID" \
    -E "hash_seed=$EXT_HASH_SEED,root_owner=0:0,lazy_itable_init=0,nodiscard" \
    -d "$DATA" "$EXT"
# mke2fs -d copies each source file's ctime, which no tool can set: the time of this
# run. Reset it to the (fake) copy time; -d numbers inodes 12, 13, … in name order.
entries=$(find "$DATA" -mindepth 1 | wc -l)
for (( ino = 12; ino < 12 + entries; ino++ )); do
    echo "set_inode_field <$ino> ctime @$E2FSPROGS_FAKE_TIME"
done >"$WORK/ctime.cmds"
debugfs -w -f "$WORK/ctime.cmds" "$EXT" >/dev/null 2>&1
# The deleted file, a day later: the entry is unlinked and the inode freed (dtime set),
# but debugfs, unlike the kernel, leaves the extent tree, so the content is recoverable.
E2FSPROGS_FAKE_TIME=1733140800 \
    debugfs -w -R "rm /Documents/secret.txt" "$EXT" >/dev/null 2>&1
e2fsck -fn "$EXT" >/dev/null 2>&1 || { echo "generate.sh: e2fsck reports errors" >&2; exit 1; }

# ---------------------------------------------------------------- disk
DISK="$WORK/sample.img"
truncate -s "${DISK_MIB}M" "$DISK"
sfdisk --quiet --no-reread --no-tell-kernel "$DISK" <<EOF
label: dos
label-id: $DISK_ID
unit: sectors

start=$FAT_START, size=$FAT_SECTORS, type=c
start=$EXT_START, size=$EXT_SECTORS, type=5
start=$LOG_START, size=$LOG_SECTORS, type=83
EOF
dd if="$FAT" of="$DISK" bs=$SECTOR seek=$FAT_START conv=notrunc status=none
dd if="$EXT" of="$DISK" bs=$SECTOR seek=$LOG_START conv=notrunc status=none
gzip -n -9 -c "$DISK" >"$HERE/sample.img.gz"

# ---------------------------------------------------------------- known-hash lists
hash_of() { "$1" <"$2" | cut -d' ' -f1; }
unrelated() { printf 'exhibit: not in the image %s' "$2" | "$1" | cut -d' ' -f1; }
CAM="$SRC/camera"

{
    echo "# exhibit sample known-hash list (plain): one hash per line, MD5/SHA-1/SHA-256 mixed."
    echo "# Generated by sample_data/generate.sh from the files put into sample.img; do not edit."
    echo "# MD5 of DCIM/100EXHIB/IMG_0002.JPG (partition 1), upper case as NSRL writes it"
    hash_of md5sum "$CAM/IMG_0002.JPG" | tr 'a-f' 'A-F'
    echo "# SHA-1 of Pictures/holiday.png (partition 5)"
    hash_of sha1sum "$SRC/data/holiday.png"
    echo "# SHA-256 of DCIM/100EXHIB/IMG_0007.JPG (partition 1, deleted, recoverable)"
    hash_of sha256sum "$CAM/IMG_0007.JPG"
    echo "# unrelated hashes (match nothing in the image)"
    unrelated md5sum 1
    unrelated sha1sum 2
    unrelated sha256sum 3
} >"$HERE/known_hashes.txt"

{
    echo "sha256,category,description"
    echo "$(hash_of sha256sum "$CAM/IMG_0001.JPG"),1,\"camera photo, Amsterdam (IMG_0001.JPG)\""
    echo "$(hash_of sha256sum "$CAM/IMG_0005.JPG"),3,camera photo Sydney (IMG_0005.JPG)"
    echo "$(unrelated sha256sum 4),2,unrelated entry"
    echo "$(unrelated sha256sum 5),1,unrelated entry"
} >"$HERE/known_hashes.csv"

# Perceptual hash sets of the known images (hashed with exhibit's own analyzer).
"$PYTHON" "$HERE/make_known_sets.py" "$SRC" "$HERE"

echo "generate.sh: wrote $HERE/sample.img.gz ($(stat -c %s "$HERE/sample.img.gz") bytes)"
sha256sum "$DISK" "$HERE/sample.img.gz"
