"""Every HMAC signature the gateway makes or checks, in one place: hex HMAC-SHA256, compared in constant time.

What is signed differs by channel, so each has its string-to-sign builder here:

- caller requests (platform -> gateway): METHOD \\n PATH_WITH_QUERY \\n X-Timestamp \\n X-Nonce \\n hex SHA256(body)
  [\\n X-Operator-Id, for a window clerk's request];
- department callbacks (department -> gateway): adapter name \\n request id \\n timestamp \\n body;
- outbox webhooks (gateway -> platform): timestamp \\n body.

This module imports nothing of the gateway: the adapter SDK re-exports it.
"""

from __future__ import annotations

import hashlib
import hmac


def hmac_hex(secret: str | bytes, message: bytes) -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def verify_hmac_hex(secret: str | bytes, message: bytes, signature: str) -> bool:
    """False for a wrong, empty or non-ASCII signature (never an exception), and for an empty secret."""
    if not secret:
        return False
    try:
        given = signature.strip().lower().encode("ascii")
    except UnicodeEncodeError:
        return False
    return hmac.compare_digest(hmac_hex(secret, message).encode(), given)


def caller_request(method: str, path_with_query: str, timestamp: str, nonce: str, body: bytes,
                   operator_id: str | None = None) -> bytes:
    lines = [method.upper(), path_with_query, timestamp, nonce, hashlib.sha256(body).hexdigest()]
    if operator_id is not None:
        lines.append(operator_id)
    return "\n".join(lines).encode()


def sign_caller_request(secret: str, method: str, path_with_query: str, timestamp: str, nonce: str, body: bytes,
                        operator_id: str | None = None) -> str:
    return hmac_hex(secret, caller_request(method, path_with_query, timestamp, nonce, body, operator_id))


def callback(adapter: str, request_id: str, timestamp: str, body: bytes) -> bytes:
    """Binding the adapter and the request id: a callback signed for one department or task fits no other."""
    return b"\n".join([adapter.encode(), request_id.encode(), timestamp.encode(), body])


def webhook(timestamp: str, body: bytes) -> bytes:
    return timestamp.encode() + b"\n" + body
