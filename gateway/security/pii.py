"""PII at rest: applicant, agent and section data are encrypted before they reach Redis.

SM4-GCM for systems assessed under 密评 (GB/T 32907 SM4, implemented by `cryptography`), AES-256-GCM otherwise.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any, Literal

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

CipherName = Literal["aes-gcm", "sm4-gcm"]


class PiiCipher:
    def __init__(self, key: bytes, name: CipherName = "aes-gcm") -> None:
        if len(key) < 32:
            raise ValueError(f"the PII key must have 32 bytes (AES-256 uses all, SM4 the first 16), got {len(key)}")
        # Each value names its cipher, and each cipher takes its own slice of the one key: switching the setting
        # encrypts new values with the other cipher while every stored value stays readable.
        self.key = key
        self.name = name

    def encrypt(self, plaintext: bytes, associated: bytes = b"") -> str:
        nonce = os.urandom(12)
        if self.name == "sm4-gcm":
            encryptor = Cipher(algorithms.SM4(self.key[:16]), modes.GCM(nonce)).encryptor()
            encryptor.authenticate_additional_data(associated)
            sealed = encryptor.update(plaintext) + encryptor.finalize() + encryptor.tag
        else:
            sealed = AESGCM(self.key[:32]).encrypt(nonce, plaintext, associated)
        return f"{self.name}:{base64.b64encode(nonce + sealed).decode()}"

    def decrypt(self, token: str, associated: bytes = b"") -> bytes:
        name, _, blob = token.partition(":")
        raw = base64.b64decode(blob)
        nonce, sealed = raw[:12], raw[12:]
        if name == "sm4-gcm":
            decryptor = Cipher(algorithms.SM4(self.key[:16]), modes.GCM(nonce, sealed[-16:])).decryptor()
            decryptor.authenticate_additional_data(associated)
            return decryptor.update(sealed[:-16]) + decryptor.finalize()
        return AESGCM(self.key[:32]).decrypt(nonce, sealed, associated)

    def seal_json(self, value: Any, associated: str) -> str:
        return self.encrypt(json.dumps(value, ensure_ascii=False).encode(), associated.encode())

    def open_json(self, token: str, associated: str) -> Any:
        return json.loads(self.decrypt(token, associated.encode()))
