#!/usr/bin/env bash
# Build sample_data/deleted-ntfs.img.gz: a 2 MiB bare NTFS volume with a deleted folder.
#
#   /keep.txt                     allocated
#   /frag1.dat                    deleted file in the root
#   /dir1/                        deleted folder, holding
#   /dir1/mult2.dat               a deleted file
#   /dir1/dir2/                   a deleted subfolder, holding
#   /dir1/dir2/frag3.dat          a deleted file
#
# The layout of the DFTT "NTFS undelete" case (dir1/dir2/frag3.dat, dir1/mult2.dat).
# ntfs-3g is the only Linux tool that creates and deletes NTFS folders, and it needs FUSE
# (root, /dev/fuse), so the image is built once and checked in; the tests read the .gz.
# Contents are fixed; ntfs-3g stamps the current time, so times (not names, inodes or
# contents) differ between builds.
#
# Needs: ntfs-3g (mkntfs, ntfs-3g), gzip, root.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WORK="$(mktemp -d)"
MNT="$WORK/mnt"
cleanup() { mountpoint -q "$MNT" && umount "$MNT"; rm -rf "$WORK"; }
trap cleanup EXIT

# Payloads over 1 KiB, so they live in clusters (non-resident), as deleted photos do.
payload() { for ((i = 0; i < $2; i++)); do printf '%s line %05d\n' "$1" "$i"; done; }

IMG="$WORK/deleted-ntfs.img"
truncate -s 2M "$IMG"
mkntfs -F -Q -q -L DELETED "$IMG" >/dev/null 2>&1
mkdir "$MNT"
ntfs-3g "$IMG" "$MNT"
mkdir -p "$MNT/dir1/dir2"
payload keep 2 >"$MNT/keep.txt"
payload frag1 200 >"$MNT/frag1.dat"
payload mult2 300 >"$MNT/dir1/mult2.dat"
payload frag3 400 >"$MNT/dir1/dir2/frag3.dat"
sync
rm "$MNT/frag1.dat"
rm -r "$MNT/dir1"
umount "$MNT"
gzip -n -9 -c "$IMG" >"$HERE/deleted-ntfs.img.gz"
echo "wrote $HERE/deleted-ntfs.img.gz"
