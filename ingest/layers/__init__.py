"""What lies between a partition and a filesystem, each read through its libyal library.

``snapshots`` (volume shadow copies of NTFS, libvshadow), ``lvm`` (LVM2 logical
volumes, checked with libvslvm), ``bitlocker`` (libbde) and ``apfs`` (containers and
their volumes, libfsapfs). Each turns bytes of a volume into what The Sleuth Kit walks
(an ``Img_Info`` over the decoded bytes) or, for APFS, into the walk itself.
"""
