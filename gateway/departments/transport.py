"""How the core reaches a department: one httpx client per adapter, with mutual TLS and the gateway's signature.

Every adapter (REST, and SOAP through zeep's transport) sends on this client, so TLS and signing live here once.
"""

from __future__ import annotations

import hashlib
import hmac
import ssl
import time
from collections.abc import Generator
from urllib.parse import urlsplit

import httpx

from gateway.sdk import AdapterSettings

TIMESTAMP_HEADER = "X-Gateway-Timestamp"
SIGNATURE_HEADER = "X-Gateway-Signature"


def signed_message(method: str, path: str, timestamp: str, body: bytes) -> bytes:
    """`METHOD\\nPATH_WITH_QUERY\\nTIMESTAMP\\nhex(SHA256(body))`: what X-Gateway-Signature is the HMAC of."""
    return f"{method.upper()}\n{path}\n{timestamp}\n{hashlib.sha256(body).hexdigest()}".encode()


def sm2_public_key(private_key_hex: str) -> str:
    """The SM2 public key (hex x || y) a department needs to verify our signatures."""
    from gmssl import sm2

    return str(sm2.CryptSM2(private_key=private_key_hex, public_key="")._kg(int(private_key_hex, 16),
                                                                          sm2.default_ecc_table["g"]))


class GatewaySignature(httpx.Auth):
    """Signs every request to a department as agreed at onboarding: hex HMAC-SHA256 with the adapter's secret, or
    an SM2 signature with SM3 (GB/T 32918, hex r || s) with our private key where the department asks for it."""

    requires_request_body = True

    def __init__(self, secret: str, algorithm: str = "hmac-sha256") -> None:
        self._secret = secret.encode()
        self._sm2 = None
        if algorithm == "sm2":
            from gmssl import sm2  # pure Python (cryptography has no SM2): loaded only where a department asks

            self._sm2 = sm2.CryptSM2(private_key=secret, public_key=sm2_public_key(secret))

    def sign(self, message: bytes) -> str:
        if self._sm2 is None:
            return hmac.new(self._secret, message, hashlib.sha256).hexdigest()
        from gmssl import func

        return str(self._sm2.sign_with_sm3(message, func.random_hex(self._sm2.para_len)))

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        timestamp = str(int(time.time()))
        parts = urlsplit(str(request.url))
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        request.headers[TIMESTAMP_HEADER] = timestamp
        request.headers[SIGNATURE_HEADER] = self.sign(signed_message(request.method, path, timestamp,
                                                                     request.content))
        yield request


def tls_context(settings: AdapterSettings) -> ssl.SSLContext:
    """Verified by default (the configured CA bundle, else the system's); our certificate when one is configured."""
    if settings.verify:
        context = ssl.create_default_context(
            cafile=str(settings.ca_bundle_file) if settings.ca_bundle_file else None)
    else:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if settings.client_cert_file:
        context.load_cert_chain(str(settings.client_cert_file),
                                str(settings.client_key_file) if settings.client_key_file else None)
    return context


def department_client(settings: AdapterSettings) -> httpx.AsyncClient:
    """The one client an adapter gets: its time-out, TLS identity and signature."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(settings.timeout_s, connect=2.0),
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
        verify=tls_context(settings),
        auth=GatewaySignature(settings.signing_secret, settings.signing_algorithm) if settings.signing_secret
        else None,
    )
