"""GATEWAY_ENV=production refuses to start on a weak secret, naming the setting in one line (exit code 2)."""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.bootstrap import ConfigurationError, build_services
from gateway.security.callers import load_callers
from gateway.security.production import WeakSecret, check_production
from gateway.settings import Settings, generated_callback_secret

GATEWAY = str(Path(sys.executable).parent / "gateway")
REPO = Path(__file__).resolve().parents[2]
ADAPTERS = ("medical", "hrss", "tax", "housing_fund", "e_license")


def strong() -> str:
    return secrets.token_hex(32)


def production_env(tmp_path: Path, **changes: str) -> dict[str, str]:
    """A production configuration where every secret is strong and its own, then `changes` applied."""
    callers = tmp_path / "callers.json"
    callers.write_text(json.dumps([{"app_id": "platform", "secret": changes.pop("CALLER_SECRET", strong())}]))
    jwks = tmp_path / "jwks.json"
    jwks.write_text('{"keys": []}')
    env = {"GATEWAY_ENV": "production", "GATEWAY_CALLERS_FILE": str(callers), "GATEWAY_IDENTITY_JWKS_FILE": str(jwks),
           "GATEWAY_IDENTITY_ISSUER": "idp", "GATEWAY_VAR_DIR": str(tmp_path / "var"),
           "GATEWAY_REDIS_URL": os.environ.get("GATEWAY_REDIS_URL", "redis://127.0.0.1:6379/15"),
           "GATEWAY_WEBHOOK_SECRET": strong(), "GATEWAY_LINK_SECRET": strong(),
           "GATEWAY_PII_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
           "GATEWAY_AUDIT_KEY": base64.b64encode(secrets.token_bytes(32)).decode()}
    env |= {f"GATEWAY_ADAPTERS__{name.upper()}__CALLBACK_SECRET": strong() for name in ADAPTERS}
    return env | changes


def run_api(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "MOCK_"))}
    return subprocess.run([GATEWAY, "api", "--port", "9"], capture_output=True, text=True, timeout=120,
                          env=clean | env, cwd=REPO)


@pytest.mark.parametrize(("change", "named", "why"), [
    ({"GATEWAY_WEBHOOK_SECRET": "dev-webhook-secret"}, "GATEWAY_WEBHOOK_SECRET", "is a default value"),
    ({"GATEWAY_ADAPTERS__TAX__CALLBACK_SECRET": "short-but-random-9f2c"},
     "GATEWAY_ADAPTERS__TAX__CALLBACK_SECRET", "is shorter than 32 bytes"),
    ({"GATEWAY_LINK_SECRET": "same-" + "0" * 40, "GATEWAY_ADAPTERS__HRSS__CALLBACK_SECRET": "same-" + "0" * 40},
     "GATEWAY_LINK_SECRET", "is the same as GATEWAY_ADAPTERS__HRSS__CALLBACK_SECRET"),
], ids=["default", "short", "duplicate"])
def test_gateway_api_refuses_a_weak_secret_in_one_line(tmp_path, change, named, why):
    refused = run_api(production_env(tmp_path, **change))
    assert refused.returncode == 2, refused.stderr[-2000:]
    lines = [line for line in refused.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, refused.stderr
    assert named in lines[0] and why in lines[0]
    for value in change.values():
        assert value not in refused.stderr  # the setting is named, its value never shown


def settings_from(env: dict[str, str]) -> Settings:
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        return Settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.mark.parametrize(("change", "message"), [
    ({"GATEWAY_ADAPTERS__MEDICAL__CALLBACK_SECRET": "dev-callback-secret"},
     "GATEWAY_ADAPTERS__MEDICAL__CALLBACK_SECRET is a default value"),
    ({"GATEWAY_ADAPTERS__HOUSING_FUND__CALLBACK_SECRET": "dev-housing_fund-callback-secret"},
     "GATEWAY_ADAPTERS__HOUSING_FUND__CALLBACK_SECRET is a default value"),  # the mock's own default, 32 bytes
    ({"CALLER_SECRET": "too-short"}, "caller platform secret (GATEWAY_CALLERS_FILE) is shorter than 32 bytes"),
    ({"GATEWAY_PII_KEY": base64.b64encode(b"k" * 16).decode()}, "GATEWAY_PII_KEY is shorter than 32 bytes"),
    ({"GATEWAY_LINK_SECRET": ""}, "GATEWAY_LINK_SECRET is not set"),
    ({"GATEWAY_AUDIT_KEY": ""}, "GATEWAY_AUDIT_KEY is not set"),
    ({"GATEWAY_PII_KEYS": json.dumps({"old": base64.b64encode(b"o" * 32).decode(),
                                      "new": base64.b64encode(b"n" * 8).decode()}), "GATEWAY_PII_KEY_ID": "new"},
     r"GATEWAY_PII_KEYS[new] is shorter than 32 bytes"),
    ({"GATEWAY_ADAPTERS__E_LICENSE__CALLBACK_SECRET": ""}, "GATEWAY_ADAPTERS__E_LICENSE__CALLBACK_SECRET is not set"),
    # The console turned on in production signs its sessions with a key that must be set, strong and its own.
    ({"GATEWAY_CONSOLE": "true"}, "GATEWAY_CONSOLE_SESSION_KEY is not set"),
    ({"GATEWAY_CONSOLE": "true", "GATEWAY_CONSOLE_SESSION_KEY": base64.b64encode(b"c" * 16).decode()},
     "GATEWAY_CONSOLE_SESSION_KEY is shorter than 32 bytes"),
    ({"GATEWAY_CONSOLE": "true", "GATEWAY_CONSOLE_SESSION_KEY": base64.b64encode(b"c" * 32).decode(),
      "GATEWAY_CONSOLE_OIDC_CLIENT_SECRET": "secret"}, "GATEWAY_CONSOLE_OIDC_CLIENT_SECRET is a default value"),
], ids=["shared-dev-default", "mock-default", "short-caller", "short-pii-key", "unset-link", "unset-audit-key",
        "short-key-in-ring", "unset-callback", "unset-console-key", "short-console-key",
        "default-oidc-client-secret"])
async def test_every_secret_is_checked_before_anything_starts(tmp_path, change, message):
    settings = settings_from(production_env(tmp_path, **change))
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        await build_services(settings, "redis://127.0.0.1:1/0", consumer="t", api=True)


def test_development_needs_no_secrets_and_production_accepts_strong_ones(tmp_path):
    dev = Settings(var_dir=tmp_path / "var")
    tax, hrss = dev.adapter("tax").callback_secret, dev.adapter("hrss").callback_secret
    assert tax and hrss and tax != hrss and len(tax) >= 32  # generated, one per department
    generated_callback_secret.cache_clear()  # as after a restart: read back from var/secrets
    assert dev.adapter("tax").callback_secret == tax  # kept under var/secrets across restarts
    settings = settings_from(production_env(tmp_path))
    assert settings.callers_file is not None
    check_production(settings, ADAPTERS, load_callers(settings.callers_file))  # nothing to refuse
    # The console's key is needed only where the console is on (off by default in production).
    audit_key = settings.audit_key or ""
    console = settings_from(production_env(tmp_path, GATEWAY_CONSOLE="true",
                                           GATEWAY_CONSOLE_SESSION_KEY=base64.b64encode(secrets.token_bytes(32)).decode()))
    check_production(console, ADAPTERS, load_callers(settings.callers_file))
    with pytest.raises(WeakSecret, match="GATEWAY_CONSOLE_SESSION_KEY is the same as GATEWAY_AUDIT_KEY"):
        shared = production_env(tmp_path, GATEWAY_CONSOLE="true", GATEWAY_AUDIT_KEY=audit_key,
                                GATEWAY_CONSOLE_SESSION_KEY=audit_key)
        check_production(settings_from(shared), ADAPTERS, load_callers(settings.callers_file))
