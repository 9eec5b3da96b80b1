#!/usr/bin/env bash
# Build sample_data/lvm.img.gz and lvm.lvs.txt: an MBR disk whose partition 1 is an LVM2
# physical volume of volume group "exhibitvg" with three logical volumes:
#
#   photos   6 + 2 MiB, FAT12, /DCIM/IMG_0001.JPG, /DCIM/IMG_0002.JPG, /filler.txt (6.6 MB)
#   notes    4 MiB, FAT12, /notes.txt                                   (one segment)
#   split    2 + 2 MiB, FAT12, /a.txt, /big.txt (3 MB)
#
# photos and split are made of two segments apart (each grows after the other was made);
# the fillers reach into the second segments, so reading them crosses a segment boundary.
#
# The volume group's metadata is lvm2's own (pvcreate, vgcreate, lvcreate, lvextend on a
# loop device). This kernel has no device-mapper, so the logical volumes are created
# without activation (--driverloaded n) and each filesystem is written at the physical
# extents lvm2 reports for it (lvs -o seg_pe_ranges): lvm.lvs.txt keeps that report, the
# tests' independent oracle for where each logical volume lives.
#
# Needs: lvm2, dosfstools, mtools, fdisk, losetup (root), gzip.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WORK="$(mktemp -d)"
IMG="$WORK/lvm.img"
LOOP=""
cleanup() {
  vgchange --driverloaded n -an exhibitvg >/dev/null 2>&1 || true
  [ -n "$LOOP" ] && losetup -d "$LOOP"
  rm -rf "$WORK"
}
trap cleanup EXIT
export LVM_SUPPRESS_FD_WARNINGS=1
LVM=(--driverloaded n)

truncate -s 24M "$IMG"
printf 'label: dos\nstart=2048, type=8e\n' | sfdisk -q "$IMG"
LOOP="$(losetup -f --show -o $((2048 * 512)) "$IMG")"
pvcreate -q -ff -y "${LVM[@]}" --dataalignment 1m "$LOOP"
vgcreate -q "${LVM[@]}" -s 1m exhibitvg "$LOOP"
lvcreate -q "${LVM[@]}" -an -Zn -y -L 2m -n split exhibitvg
lvcreate -q "${LVM[@]}" -an -Zn -y -L 6m -n photos exhibitvg
lvextend -q "${LVM[@]}" -L 4m exhibitvg/split
lvextend -q "${LVM[@]}" -L 8m exhibitvg/photos
lvcreate -q "${LVM[@]}" -an -Zn -y -L 4m -n notes exhibitvg
vgchange -q "${LVM[@]}" -an exhibitvg
{
  echo "# pvs -o pv_name,pe_start --units b (offsets inside partition 1, at byte 1048576)"
  pvs "${LVM[@]}" --noheadings --units b -o pe_start,vg_extent_size "$LOOP"
  echo "# lvs -o lv_name,seg_start_pe,seg_size_pe,seg_pe_ranges"
  lvs "${LVM[@]}" --noheadings --units b -o lv_name,seg_start_pe,seg_size_pe,seg_pe_ranges \
    exhibitvg
} > "$WORK/lvm.lvs.txt"
losetup -d "$LOOP"
LOOP=""

# Write each logical volume's filesystem at its extents (1 MiB each).
PART=$((2048 * 512))
PE_START="$(awk '!/^#/ && NF == 2 {sub("B","",$1); print $1; exit}' "$WORK/lvm.lvs.txt")"
make_fs() {  # name size_mib fat_bits files...
  local name="$1" size="$2" bits="$3"; shift 3
  local fs="$WORK/$name.fs"
  truncate -s "${size}M" "$fs"
  mkfs.fat -F "$bits" -n "${name^^}" "$fs" >/dev/null
  while [ $# -gt 0 ]; do
    local dest="$1" src="$2"; shift 2
    MTOOLS_SKIP_CHECK=1 mmd -D s -i "$fs" "::$(dirname "$dest")" 2>/dev/null || true
    MTOOLS_SKIP_CHECK=1 mcopy -i "$fs" "$src" "::$dest"
  done
  # Each segment: "name start_pe size_pe /dev/loopN:first-last"
  local logical=0
  while read -r lv start size ranges; do
    [ "$lv" = "$name" ] || continue
    local first="${ranges##*:}"; first="${first%-*}"
    dd if="$fs" of="$IMG" bs=1M skip="$start" count="$size" conv=notrunc status=none \
      seek=$(((PART + PE_START) / 1048576 + first))
  done < <(grep -v '^#' "$WORK/lvm.lvs.txt" | awk 'NF == 4')
}
head -c 40000 /dev/urandom > "$WORK/img1"; printf '\xff\xd8\xff\xe0' | cat - "$WORK/img1" > "$WORK/IMG_0001.JPG"
head -c 30000 /dev/urandom > "$WORK/img2"; printf '\xff\xd8\xff\xe0' | cat - "$WORK/img2" > "$WORK/IMG_0002.JPG"
for i in $(seq 1 400); do echo "note line $i"; done > "$WORK/notes.txt"
for i in $(seq 1 3000); do echo "split file line $i"; done > "$WORK/a.txt"
# Fillers that reach each volume's second segment (so reading them crosses it).
# One numbered 4 KiB line per block: every block differs, and the image stays small.
for i in $(seq 1 1650); do printf '%-4095s\n' "photos filler block $i"; done > "$WORK/filler.txt"
for i in $(seq 1 750); do printf '%-4095s\n' "split filler block $i"; done > "$WORK/big.txt"
make_fs photos 8 12 /DCIM/IMG_0001.JPG "$WORK/IMG_0001.JPG" /DCIM/IMG_0002.JPG "$WORK/IMG_0002.JPG" \
  /filler.txt "$WORK/filler.txt"
make_fs notes 4 12 /notes.txt "$WORK/notes.txt"
make_fs split 4 12 /a.txt "$WORK/a.txt" /big.txt "$WORK/big.txt"
gzip -9 -c "$IMG" > "$HERE/lvm.img.gz"
cp "$WORK/lvm.lvs.txt" "$HERE/lvm.lvs.txt"
cat "$HERE/lvm.lvs.txt"
