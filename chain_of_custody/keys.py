"""Examiner keys: who signed an entry, provable with a public key and nothing else.

Every ledger entry is signed with the acting examiner's Ed25519 key. The parts a
verifier needs are deliberately plain, so anyone can re-implement them:

* public key: the raw 32-byte Ed25519 key, as 64 lower-case hex digits;
* fingerprint: SHA-256 of those 32 bytes, as 64 lower-case hex digits;
* signature: the raw 64-byte Ed25519 signature, as 128 lower-case hex digits.

A public key record (what a case keeps in ``CASE/keys/<fingerprint>.json`` and an
export carries) names the examiner and is signed by its own key (``self_signature``
over the RFC 8785 bytes of the record without that field), which shows that whoever
made the record held the private key and binds the name to it.

The private key lives in the examiner's own config directory (see :class:`KeyStore`),
PKCS #8 PEM, mode 0600, encrypted when a passphrase is given.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from chain_of_custody.canonical import canonical_bytes
from chain_of_custody.errors import LedgerError

ALGORITHM = "Ed25519"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX128 = re.compile(r"[0-9a-f]{128}")
_ID_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
#: Identity fields a key record may carry besides the key itself.
IDENTITY_FIELDS: tuple[str, ...] = ("examiner_id", "name", "agency", "badge_id")
RECORD_FIELDS: frozenset[str] = frozenset(
    {"algorithm", "public_key", "fingerprint", "created", "self_signature", *IDENTITY_FIELDS}
)


class ExaminerKeyError(LedgerError):
    """An examiner key that cannot be created, found, decrypted or trusted."""


def raw_public(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def fingerprint(public_key: Ed25519PublicKey) -> str:
    """SHA-256 hex of the raw public key: the name a ledger entry gives its signer."""
    return hashlib.sha256(raw_public(public_key)).hexdigest()


def public_key_from_hex(text: object) -> Ed25519PublicKey:
    """ValueError unless ``text`` is 64 lower-case hex digits of an Ed25519 key."""
    if not isinstance(text, str) or not _HEX64.fullmatch(text):
        raise ValueError("public key must be 64 lower-case hex digits (raw Ed25519)")
    return Ed25519PublicKey.from_public_bytes(bytes.fromhex(text))


def verify_signature(public_key: Ed25519PublicKey, signature: object, data: bytes) -> bool:
    """True when ``signature`` (128 hex digits) is ``public_key``'s over ``data``."""
    if not isinstance(signature, str) or not _HEX128.fullmatch(signature):
        return False
    try:
        public_key.verify(bytes.fromhex(signature), data)
    except InvalidSignature:
        return False
    return True


def slug(name: str) -> str:
    """A default examiner id from a display name: ``Jane O'Doe`` → ``jane-o-doe``."""
    text = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return text[:64] or "examiner"


class Signer:
    """An examiner's private key with the identity it signs as."""

    def __init__(self, private_key: Ed25519PrivateKey, identity: Mapping[str, str]) -> None:
        self._key = private_key
        self.public_key = private_key.public_key()
        self.fingerprint = fingerprint(self.public_key)
        self.identity = {k: str(v) for k, v in identity.items() if k in IDENTITY_FIELDS and v}
        if "examiner_id" not in self.identity or "name" not in self.identity:
            raise ValueError("an examiner identity needs at least examiner_id and name")

    @classmethod
    def generate(cls, identity: Mapping[str, str]) -> Signer:
        return cls(Ed25519PrivateKey.generate(), identity)

    @property
    def examiner_id(self) -> str:
        return self.identity["examiner_id"]

    @property
    def name(self) -> str:
        return self.identity["name"]

    def sign(self, data: bytes) -> str:
        return self._key.sign(data).hex()

    def actor(self) -> dict[str, str]:
        """The ``actor`` of the entries this key signs (bound by the entry hash)."""
        return {"examiner": self.name, "examiner_id": self.examiner_id,
                "key_fingerprint": self.fingerprint}

    def public_record(self, created: str | None = None) -> dict[str, str]:
        """The self-signed public key record a case and an export keep."""
        record: dict[str, str] = {
            "algorithm": ALGORITHM,
            "public_key": raw_public(self.public_key).hex(),
            "fingerprint": self.fingerprint,
            "created": created or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            **self.identity,
        }
        record["self_signature"] = self.sign(canonical_bytes(record))
        return record

    def private_pem(self, passphrase: bytes | None) -> bytes:
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(passphrase) if passphrase
            else serialization.NoEncryption()
        )
        return self._key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8, encryption)


def check_public_record(record: object) -> Ed25519PublicKey:
    """The key of a public key record, or ValueError saying what is wrong with it."""
    if not isinstance(record, dict):
        raise ValueError("a key record must be a JSON object")
    unknown = sorted(set(record) - RECORD_FIELDS)
    if unknown:
        raise ValueError(f"key record has unknown fields {unknown}")
    if record.get("algorithm") != ALGORITHM:
        raise ValueError(f"key algorithm {record.get('algorithm')!r} is not {ALGORITHM}")
    public_key = public_key_from_hex(record.get("public_key"))
    if fingerprint(public_key) != record.get("fingerprint"):
        raise ValueError("key record's fingerprint is not the SHA-256 of its public key")
    body = {k: v for k, v in record.items() if k != "self_signature"}
    if not verify_signature(public_key, record.get("self_signature"), canonical_bytes(body)):
        raise ValueError("key record's self_signature does not verify")
    return public_key


def load_key_records(records: Iterable[object]) -> tuple[dict[str, Ed25519PublicKey],
                                                          dict[str, dict[str, Any]], list[str]]:
    """(fingerprint → key, fingerprint → record, problems) from public key records."""
    keys: dict[str, Ed25519PublicKey] = {}
    described: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    for i, record in enumerate(records):
        try:
            key = check_public_record(record)
        except ValueError as exc:
            problems.append(f"key record {i}: {exc}")
            continue
        assert isinstance(record, dict)  # checked above; narrows the type
        keys[record["fingerprint"]] = key
        described[record["fingerprint"]] = record
    return keys, described, problems


def read_key_dir(directory: Path) -> list[object]:
    """The JSON key records in ``directory`` (``*.json``), in file-name order."""
    records: list[object] = []
    for path in sorted(Path(directory).glob("*.json")):
        try:
            records.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            records.append({"unreadable": f"{path.name}: {exc}"})
    return records


# -- the examiner's own key store ----------------------------------------------------------


def config_dir() -> Path:
    """``$XDG_CONFIG_HOME/exhibit`` (``~/.config/exhibit`` when unset)."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "exhibit"


PassphraseSource = Callable[[str], bytes | None]


class KeyStore:
    """Examiner identities of one login: ``examiners/<id>.key`` (private) + ``<id>.json``.

    Several identities may live side by side (a shared workstation account, a demo key);
    one is chosen by id or name, or is the only one.
    """

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = (directory or config_dir()) / "examiners"

    def identities(self) -> list[dict[str, Any]]:
        found = []
        for path in sorted(self.directory.glob("*.json")):
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(record, dict) and (self.directory / f"{path.stem}.key").exists():
                found.append(record)
        return found

    def find(self, selector: str | None) -> dict[str, Any] | None:
        """The identity named by id, name (case-insensitive) or fingerprint; or the only one."""
        identities = self.identities()
        if selector is None:
            if len(identities) == 1:
                return identities[0]
            if not identities:
                return None
            names = ", ".join(sorted(i.get("examiner_id", "?") for i in identities))
            raise ExaminerKeyError(
                f"several examiner keys in {self.directory} ({names}); choose one with"
                " --examiner ID or $EXHIBIT_EXAMINER"
            )
        wanted = selector.strip()
        for identity in identities:
            if wanted in (identity.get("examiner_id"), identity.get("fingerprint")):
                return identity
        matches = [i for i in identities if str(i.get("name", "")).casefold() == wanted.casefold()]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise ExaminerKeyError(f"several examiner keys are named {selector!r}; use the id")
        return None

    def create(self, name: str, examiner_id: str | None = None, agency: str | None = None,
               badge_id: str | None = None, passphrase: bytes | None = None) -> Signer:
        """Generate and store a new key; refuses to replace an existing identity."""
        if not name or not name.strip() or any(ord(c) < 32 for c in name):
            raise ValueError("the examiner name must be non-empty printable text")
        examiner_id = examiner_id or slug(name)
        if not _ID_RE.fullmatch(examiner_id):
            raise ValueError(
                f"examiner id {examiner_id!r}: use 1-64 of a-z 0-9 . _ - (starting alphanumeric)"
            )
        key_path = self.directory / f"{examiner_id}.key"
        if key_path.exists():
            raise ExaminerKeyError(
                f"an examiner key {examiner_id!r} already exists ({key_path}); a key is never"
                " overwritten: choose another --id or move the old one away yourself"
            )
        identity = {"examiner_id": examiner_id, "name": name.strip(), "agency": agency or "",
                    "badge_id": badge_id or ""}
        signer = Signer.generate(identity)
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.directory, 0o700)
        _write_private(key_path, signer.private_pem(passphrase))
        record = signer.public_record()
        public_path = self.directory / f"{examiner_id}.json"
        public_path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n",
                               encoding="utf-8")
        return signer

    def load(self, identity: Mapping[str, Any], passphrase: PassphraseSource) -> Signer:
        """The signer of ``identity``; asks ``passphrase`` only for an encrypted key."""
        examiner_id = str(identity["examiner_id"])
        path = self.directory / f"{examiner_id}.key"
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise ExaminerKeyError(
                f"{path} is readable by others (mode {mode:o}); run chmod 600 {path}"
            )
        data = path.read_bytes()
        secret = passphrase(examiner_id) if b"ENCRYPTED" in data else None
        try:
            key = serialization.load_pem_private_key(data, password=secret)
        except (TypeError, ValueError) as exc:
            raise ExaminerKeyError(
                f"cannot unlock the examiner key {path}: wrong or missing passphrase"
                " (set EXHIBIT_KEY_PASSPHRASE or run in a terminal to be asked)"
            ) from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise ExaminerKeyError(f"{path} is not an Ed25519 private key")
        signer = Signer(key, {k: str(identity.get(k) or "") for k in IDENTITY_FIELDS})
        if identity.get("fingerprint") not in (None, signer.fingerprint):
            raise ExaminerKeyError(f"{path} does not belong to its public record")
        return signer


def _write_private(path: Path, data: bytes) -> None:
    """Create the key file 0600 from the start (never briefly world-readable)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(path, 0o600)
