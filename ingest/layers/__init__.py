"""What lies between a partition and a filesystem, each read through its libyal library.

``snapshots`` (volume shadow copies of NTFS, libvshadow), ``lvm`` (LVM2 logical
volumes, checked with libvslvm), ``bitlocker`` (libbde) and ``apfs`` (containers and
their volumes, libfsapfs). Each turns bytes of a volume into what The Sleuth Kit walks
(an ``Img_Info`` over the decoded bytes) or, for APFS, into the walk itself.
"""

from __future__ import annotations

import pytsk3

# The examiner's keys for encrypted volumes (APFS, BitLocker) reach the walk child and the
# workers through the environment only: never in a task graph, the ledger or the database.
PASSWORD_ENV = "EXHIBIT_VOLUME_PASSWORD"
RECOVERY_KEY_ENV = "EXHIBIT_RECOVERY_KEY"


class LayerImage(pytsk3.Img_Info):
    """Decoded bytes of a layer as The Sleuth Kit reads an image: a subclass sets ``size``,
    gives ``read_at`` and ends its ``__init__`` with ``super().__init__(url="",
    type=pytsk3.TSK_IMG_TYPE_EXTERNAL)``."""

    size: int

    def read(self, offset: int, size: int) -> bytes:
        return self.read_at(offset, size)

    def get_size(self) -> int:
        return self.size

    def read_at(self, offset: int, size: int) -> bytes:
        raise NotImplementedError
