"""Signed checkpoints: the chain's head (position, hash, time) signed with an Ed25519 key, kept
outside the database, so that history rewritten *and re-hashed* by someone with write access to the
database is still caught (docs/audit.md, "Checkpoints").

A checkpoint file is JSON: {position, hash, recorded_at, created_at, key_id, signature}. The
signature (base64) is over the canonical JSON (sorted keys, orjson) of every other field; key_id is
the first 16 hex digits of SHA-256 over the raw public key, so an operator can tell keys apart.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_private_key,
    load_pem_public_key,
)

from shared.config import Settings
from shared.errors import ConfigError
from shared.store.hashing import canonical_json

SIGNING_SETTING = "LEDGERLINE_AUDIT_SIGNING_KEY_FILE"
VERIFY_SETTING = "LEDGERLINE_AUDIT_VERIFY_KEY_FILE"


class CheckpointError(Exception):
    """The checkpoint file cannot be used (unreadable, malformed, or its signature does not verify)."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    position: int
    hash: str
    recorded_at: str
    created_at: str
    key_id: str
    signature: str

    def signed_part(self) -> bytes:
        fields = asdict(self)
        del fields["signature"]
        return canonical_json(fields)

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def key_id(public_key: Ed25519PublicKey) -> str:
    return hashlib.sha256(public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)).hexdigest()[:16]


def _read(path: Path, setting: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise ConfigError([f"{setting}: cannot read {path}: {e.strerror or e}"]) from e


def signing_key(settings: Settings) -> Ed25519PrivateKey:
    path = settings.audit_signing_key_file
    if path is None:
        raise ConfigError([f"{SIGNING_SETTING}: must be set to sign a checkpoint (a PEM Ed25519 private key)"])
    try:
        key = load_pem_private_key(_read(path, SIGNING_SETTING), password=None)
    except (ValueError, TypeError) as e:
        raise ConfigError([f"{SIGNING_SETTING}: {path} is not an unencrypted PEM private key"]) from e
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError([f"{SIGNING_SETTING}: {path} must hold an Ed25519 key"])
    return key


def verify_key(settings: Settings) -> Ed25519PublicKey:
    """The public key of the verify setting, or the one derived from the signing key."""
    path = settings.audit_verify_key_file
    if path is None:
        if settings.audit_signing_key_file is None:
            raise ConfigError([f"{VERIFY_SETTING} (or {SIGNING_SETTING}): must be set to verify a checkpoint"])
        return signing_key(settings).public_key()
    try:
        key = load_pem_public_key(_read(path, VERIFY_SETTING))
    except ValueError as e:
        raise ConfigError([f"{VERIFY_SETTING}: {path} is not a PEM public key"]) from e
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError([f"{VERIFY_SETTING}: {path} must hold an Ed25519 public key"])
    return key


def sign(key: Ed25519PrivateKey, *, position: int, hash_: str, recorded_at: str, created_at: str) -> Checkpoint:
    unsigned = Checkpoint(position, hash_, recorded_at, created_at, key_id(key.public_key()), "")
    signature = base64.b64encode(key.sign(unsigned.signed_part())).decode()
    return Checkpoint(position, hash_, recorded_at, created_at, unsigned.key_id, signature)


def load(path: Path) -> Checkpoint:
    try:
        data: Any = orjson.loads(path.read_bytes())
    except OSError as e:
        raise CheckpointError(f"cannot read the checkpoint {path}: {e.strerror or e}") from e
    except orjson.JSONDecodeError as e:
        raise CheckpointError(f"the checkpoint {path} is not JSON") from e
    try:
        cp = Checkpoint(**data)
    except TypeError as e:
        raise CheckpointError(f"the checkpoint {path} does not have exactly the fields of a checkpoint") from e
    if (
        type(cp.position) is not int
        or cp.position < 0
        or not all(isinstance(v, str) for v in (cp.hash, cp.recorded_at, cp.created_at, cp.key_id, cp.signature))
    ):
        raise CheckpointError(f"the checkpoint {path} has a field of the wrong type")
    return cp


def check_signature(cp: Checkpoint, key: Ed25519PublicKey) -> None:
    if cp.key_id != key_id(key):
        raise CheckpointError(f"the checkpoint was signed by key {cp.key_id}, not by the verify key {key_id(key)}")
    try:
        key.verify(base64.b64decode(cp.signature, validate=True), cp.signed_part())
    except (InvalidSignature, ValueError) as e:
        raise CheckpointError("the checkpoint's signature does not verify: the file was altered") from e
