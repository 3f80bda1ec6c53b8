"""PII at rest: everything derived from a person is encrypted before it reaches Redis.

SM4-GCM for systems assessed under 密评 (GB/T 32907 SM4, implemented by `cryptography`), AES-256-GCM otherwise.
A sealed value reads `v2:<key id>:<cipher>:<base64 of nonce + ciphertext + tag>`: it names the key of the keyring
and the cipher that sealed it, so a new current key (rotation) or another cipher leaves every stored value
readable. Each (key, purpose, cipher) has its own sub-key derived with HKDF-SHA256: AES and SM4 never share key
bytes, and case fields and event bodies are sealed under different sub-keys. Values sealed before key ids existed
(`aes-gcm:…` / `sm4-gcm:…`, the raw key sliced) still open with whichever key of the ring sealed them.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any, Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

CipherName = Literal["aes-gcm", "sm4-gcm"]
Purpose = Literal["pii", "events"]
VERSION = "v2"
_KEY_LENGTH = {"aes-gcm": 32, "sm4-gcm": 16}


def _aead_seal(name: str, key: bytes, nonce: bytes, plaintext: bytes, associated: bytes) -> bytes:
    if name == "sm4-gcm":
        encryptor = Cipher(algorithms.SM4(key), modes.GCM(nonce)).encryptor()
        encryptor.authenticate_additional_data(associated)
        return encryptor.update(plaintext) + encryptor.finalize() + encryptor.tag
    return AESGCM(key).encrypt(nonce, plaintext, associated)


def _aead_open(name: str, key: bytes, nonce: bytes, sealed: bytes, associated: bytes) -> bytes:
    if name == "sm4-gcm":
        decryptor = Cipher(algorithms.SM4(key), modes.GCM(nonce, sealed[-16:])).decryptor()
        decryptor.authenticate_additional_data(associated)
        return decryptor.update(sealed[:-16]) + decryptor.finalize()
    if name == "aes-gcm":
        return AESGCM(key).decrypt(nonce, sealed, associated)
    raise ValueError(f"unknown cipher {name!r}")


class PiiCipher:
    """Seals with the current key of a keyring; opens with any key of it."""

    def __init__(self, keys: bytes | dict[str, bytes], name: CipherName = "aes-gcm", *, current: str | None = None,
                 purpose: Purpose = "pii") -> None:
        ring = {"k0": keys} if isinstance(keys, bytes) else dict(keys)
        if not ring:
            raise ValueError("the PII keyring is empty")
        for key_id, key in ring.items():
            if len(key) < 32:
                raise ValueError(f"PII key {key_id!r} must have 32 bytes, got {len(key)}")
            if not key_id or ":" in key_id:
                raise ValueError(f"PII key id {key_id!r} must be non-empty and without ':'")
        if current is None:
            if len(ring) > 1:
                raise ValueError("several PII keys and no current key id: set GATEWAY_PII_KEY_ID")
            current = next(iter(ring))
        if current not in ring:
            raise ValueError(f"the current PII key id {current!r} is not in the keyring")
        self.keys = ring
        self.current = current
        self.name = name
        self.purpose = purpose
        self._derived: dict[tuple[str, str], bytes] = {}

    def for_purpose(self, purpose: Purpose) -> PiiCipher:
        return PiiCipher(self.keys, self.name, current=self.current, purpose=purpose)

    def _subkey(self, key_id: str, name: str) -> bytes:
        if (key_id, name) not in self._derived:
            hkdf = HKDF(algorithm=hashes.SHA256(), length=_KEY_LENGTH[name], salt=None,
                        info=f"flex-gateway/{self.purpose}/{name}".encode())
            self._derived[key_id, name] = hkdf.derive(self.keys[key_id])
        return self._derived[key_id, name]

    def encrypt(self, plaintext: bytes, associated: bytes = b"") -> str:
        nonce = os.urandom(12)
        sealed = _aead_seal(self.name, self._subkey(self.current, self.name), nonce, plaintext, associated)
        return f"{VERSION}:{self.current}:{self.name}:{base64.b64encode(nonce + sealed).decode()}"

    def decrypt(self, token: str, associated: bytes = b"") -> bytes:
        if token.startswith(VERSION + ":"):
            _, key_id, name, blob = token.split(":", 3)
            if key_id not in self.keys:
                raise ValueError(f"sealed under PII key {key_id!r}, which is not in the keyring")
            raw = base64.b64decode(blob)
            return _aead_open(name, self._subkey(key_id, name), raw[:12], raw[12:], associated)
        # Before key ids: the raw key, AES taking all 32 bytes and SM4 the first 16; the tag tells which key.
        name, _, blob = token.partition(":")
        raw = base64.b64decode(blob)
        for key in self.keys.values():
            try:
                return _aead_open(name, key[:_KEY_LENGTH.get(name, 32)], raw[:12], raw[12:], associated)
            except InvalidTag:
                continue
        raise InvalidTag()

    def is_current(self, token: str) -> bool:
        """Sealed under the current key and cipher: nothing for a rotation to do."""
        return token.startswith(f"{VERSION}:{self.current}:{self.name}:")

    def reseal(self, token: str, associated: bytes) -> str:
        return self.encrypt(self.decrypt(token, associated), associated)

    def seal_json(self, value: Any, associated: str) -> str:
        # Compact separators: every sealed value sits in Redis until retention, a few per cent smaller this way.
        return self.encrypt(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode(),
                            associated.encode())

    def open_json(self, token: str, associated: str) -> Any:
        return json.loads(self.decrypt(token, associated.encode()))


def is_sealed(value: str) -> bool:
    return value.startswith((VERSION + ":", "aes-gcm:", "sm4-gcm:"))
