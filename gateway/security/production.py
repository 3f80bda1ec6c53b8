"""What `GATEWAY_ENV=production` enforces before anything starts: every secret set, strong and used only once.

A default or generated secret is fine for a newcomer's `gateway up`; in production it would let anyone who read
this repository sign a caller request, a department callback or a webhook, or forge a link. The first weak secret
found is named in one line (its setting, never its value) and the process exits.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping

from gateway.security.callers import Caller
from gateway.settings import Settings

MIN_SECRET_BYTES = 32
# Values this repository ships (settings defaults, mocks, demos, tests): public, so never a secret.
KNOWN_DEFAULTS = frozenset({"dev-callback-secret", "dev-webhook-secret", "test-platform-secret",
                            "test-window-secret", "changeme", "change-me", "secret"})


class WeakSecret(ValueError):
    """The setting that refuses production, in one line."""


def production_secrets(settings: Settings, adapters: Iterable[str],
                       callers: Mapping[str, Caller]) -> list[tuple[str, bytes | None]]:
    """(setting, value) for every secret production needs; None for one that is not set."""
    found: list[tuple[str, bytes | None]] = []
    for caller in callers.values():
        found.append((f"caller {caller.app_id} secret (GATEWAY_CALLERS_FILE)", caller.secret.encode()))
        if caller.webhook_secret:
            found.append((f"caller {caller.app_id} webhook_secret (GATEWAY_CALLERS_FILE)",
                          caller.webhook_secret.encode()))
    found.append(("GATEWAY_WEBHOOK_SECRET", settings.webhook_secret.encode() or None))
    for name in sorted(adapters):
        configured = settings.adapters.get(name)
        secret = configured.callback_secret if configured else ""
        found.append((f"GATEWAY_ADAPTERS__{name.upper()}__CALLBACK_SECRET", secret.encode() or None))
    found.append(("GATEWAY_LINK_SECRET", settings.link_secret.encode() if settings.link_secret else None))
    if settings.pii_keys:
        found += [(f"GATEWAY_PII_KEYS[{key_id}]", _base64_key(f"GATEWAY_PII_KEYS[{key_id}]", value))
                  for key_id, value in sorted(settings.pii_keys.items())]
    else:
        found.append(("GATEWAY_PII_KEY", _base64_key("GATEWAY_PII_KEY", settings.pii_key)))
    found.append(("GATEWAY_AUDIT_KEY", _base64_key("GATEWAY_AUDIT_KEY", settings.audit_key)))
    if settings.console_enabled:  # a forged session cookie would be an operator's
        found.append(("GATEWAY_CONSOLE_SESSION_KEY",
                      _base64_key("GATEWAY_CONSOLE_SESSION_KEY", settings.console_session_key)))
        if settings.console_oidc_client_secret is not None:  # a public client (PKCE only) has none
            found.append(("GATEWAY_CONSOLE_OIDC_CLIENT_SECRET", settings.console_oidc_client_secret.encode() or None))
    return found


def _base64_key(setting: str, value: str | None) -> bytes | None:
    if not value:
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise WeakSecret(f"{setting} is not base64") from None


def refuse_weak_secrets(secrets: list[tuple[str, bytes | None]]) -> None:
    """Raise WeakSecret for the first secret that is unset, a known default, short, or equal to another one."""
    seen: dict[bytes, str] = {}
    for setting, value in secrets:
        if value is None:
            raise WeakSecret(f"{setting} is not set (production generates no secrets)")
        text = value.decode(errors="replace")
        if text in KNOWN_DEFAULTS or text.startswith("dev-"):
            raise WeakSecret(f"{setting} is a default value shipped with the gateway")
        if len(value) < MIN_SECRET_BYTES:
            raise WeakSecret(f"{setting} is shorter than {MIN_SECRET_BYTES} bytes")
        if value in seen:
            raise WeakSecret(f"{setting} is the same as {seen[value]}: every secret must be its own")
        seen[value] = setting


def check_production(settings: Settings, adapters: Iterable[str], callers: Mapping[str, Caller]) -> None:
    """What GATEWAY_ENV=production runs at start-up: WeakSecret names the first weak secret."""
    refuse_weak_secrets(production_secrets(settings, adapters, callers))
