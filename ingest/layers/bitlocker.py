"""BitLocker volumes through libbde, opened only with the examiner's recovery password.

A volume whose boot sector carries BitLocker's OEM id (``-FVE-FS-`` at byte 3) is read
through libbde: with the password or recovery password given (``--volume-password`` /
``--recovery-key``, which reach every process through the environment, as for APFS), the
decrypted volume is what The Sleuth Kit walks (``DecryptedImage``, filesystem at offset
0); without one, or with one that does not unlock it, or with metadata libbde cannot
read, an ``IngestError`` says which, and the walk records it for that volume.
"""

from __future__ import annotations

import os

import pybde
import pytsk3

from ingest.errors import IngestError
from ingest.image import EvidenceImage
from ingest.layers import PASSWORD_ENV, RECOVERY_KEY_ENV, LayerImage
from ingest.layers.snapshots import VolumeFile

OEM_ID = b"-FVE-FS-"


def is_bitlocker(image: EvidenceImage, start: int) -> bool:
    return image.read_at(start + 3, len(OEM_ID)) == OEM_ID


class DecryptedImage(LayerImage):
    """The plaintext of one BitLocker volume, for The Sleuth Kit."""

    def __init__(self, image: EvidenceImage, start: int, length: int) -> None:
        self.image = image
        self.paths = image.paths
        where = f"the BitLocker volume at byte offset {start} of {image.paths[0]}"
        self._file = VolumeFile(image, start, length)
        self._volume = pybde.volume()
        password = os.environ.get(PASSWORD_ENV)
        recovery = os.environ.get(RECOVERY_KEY_ENV)
        try:
            if password:
                self._volume.set_password(password)
            if recovery:
                self._volume.set_recovery_password(recovery)
            self._volume.open_file_object(self._file)
        except (OSError, ValueError) as exc:
            raise IngestError(f"{where}: libbde cannot read its metadata (or the key given"
                              f" has the wrong form): {str(exc).strip()}") from exc
        try:
            locked = self._volume.is_locked()
            if locked and not (password or recovery):
                raise IngestError(f"{where} is encrypted: not read without its recovery "
                                  f"password (--recovery-key) or password")
            if locked and not self._volume.unlock():
                raise IngestError(f"{where}: the password or recovery password given does"
                                  f" not unlock it")
            self.size = int(self._volume.get_size())
        except (OSError, ValueError) as exc:
            self._volume.close()
            raise IngestError(f"{where}: {str(exc).strip()}") from exc
        except IngestError:
            self._volume.close()
            raise
        super().__init__(url="", type=pytsk3.TSK_IMG_TYPE_EXTERNAL)

    def read_at(self, offset: int, size: int) -> bytes:
        size = max(0, min(size, self.size - offset))
        if not size:
            return b""
        return bytes(self._volume.read_buffer_at_offset(size, offset))

    def close(self) -> None:
        self._volume.close()
