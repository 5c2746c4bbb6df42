"""Protection of personal identifiers at rest.

An identifier is stored twice: as a keyed hash (HMAC-SHA256) that lookups match on, and as an
AES-GCM ciphertext that only a holder of the key can turn back into the clear value. A database
dump without the key therefore reveals neither phones nor ids, while lookups stay an index seek.
Both keys are derived from one secret with HKDF so there is one thing to keep safe and rotate.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from memberops.kit.settings import get_settings

_NONCE_BYTES = 12


def _derive(secret: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(secret)


@dataclass(frozen=True)
class IdentifierVault:
    """Hashes and encrypts identifier values with keys derived from one secret."""

    lookup_key: bytes
    encryption_key: bytes

    @classmethod
    def from_secret(cls, secret: bytes) -> IdentifierVault:
        return cls(
            lookup_key=_derive(secret, b"memberops identifier lookup v1"),
            encryption_key=_derive(secret, b"memberops identifier encryption v1"),
        )

    @cached_property
    def _cipher(self) -> AESGCM:
        return AESGCM(self.encryption_key)

    def digest(self, kind: str, namespace: str, value: str) -> bytes:
        """Return the lookup digest of a normalised identifier (type and namespace included)."""
        message = f"{kind}\x1f{namespace}\x1f{value}".encode()
        return hmac.new(self.lookup_key, message, hashlib.sha256).digest()

    def encrypt(self, value: str) -> bytes:
        """Encrypt a clear value; a fresh nonce each time, so equal values give different bytes."""
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + self._cipher.encrypt(nonce, value.encode(), None)

    def decrypt(self, blob: bytes) -> str:
        """Return the clear value of ``encrypt``'s output; raises if the key or bytes are wrong."""
        nonce, ciphertext = blob[:_NONCE_BYTES], blob[_NONCE_BYTES:]
        return self._cipher.decrypt(nonce, ciphertext, None).decode()


def load_secret(secret_key: str | None, secret_file: Path) -> bytes:
    """Return the configured secret, creating the secret file (mode 0600) on first use."""
    if secret_key:
        return base64.b64decode(secret_key)
    if secret_file.exists():
        return base64.b64decode(secret_file.read_text().strip())
    secret = secrets.token_bytes(32)
    secret_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(base64.b64encode(secret).decode() + "\n")
    return secret


@lru_cache(maxsize=1)
def get_vault() -> IdentifierVault:
    """Return the vault for the configured secret (cached per process)."""
    settings = get_settings()
    return IdentifierVault.from_secret(load_secret(settings.secret_key, settings.secret_file))
