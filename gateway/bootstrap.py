"""Wires the gateway's parts by hand, once per process: what the API and the worker share."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass

import jwt
import structlog
import yaml

from gateway.departments.registry import AdapterManager
from gateway.domain.working_days import WorkingDayCalendar
from gateway.observability.metrics import CALENDAR_FALLBACK
from gateway.orchestration.engine import Engine
from gateway.profiles.loader import ProfileRegistry
from gateway.resilience.breaker import CircuitBreakers
from gateway.sdk import DepartmentAdapter
from gateway.security.applicant_identity import IdentityVerifier
from gateway.security.audit import AuditSigner
from gateway.security.caller_quotas import CallerQuotas
from gateway.security.callers import Caller, CallerAuthenticator, load_callers
from gateway.security.links import LinkStore
from gateway.security.pii import PiiCipher
from gateway.security.production import WeakSecret, check_production
from gateway.security.secrets import configured_key, stored_secret
from gateway.settings import Settings
from gateway.store.cases import CaseStore
from gateway.store.connection import StrRedis, connect
from gateway.store.queue import TaskQueue

log = structlog.get_logger("gateway")


class ConfigurationError(RuntimeError):
    pass


def _calendar_fallback(year: int) -> None:
    CALENDAR_FALLBACK.labels(str(year)).inc()
    log.warning("no holiday data for year: deadlines use Mon-Fri; add the year to the calendar overrides", year=year)


@dataclass
class Services:
    settings: Settings
    redis: StrRedis
    store: CaseStore
    queue: TaskQueue
    profiles: ProfileRegistry
    adapters: AdapterManager
    engine: Engine
    links: LinkStore
    calendar: WorkingDayCalendar
    authenticator: CallerAuthenticator | None
    identity: IdentityVerifier | None
    callers: dict[str, Caller]  # empty without GATEWAY_CALLERS_FILE (a worker then uses the global webhook)
    quotas: CallerQuotas

    async def close(self) -> None:
        await self.adapters.close()
        await self.redis.aclose()


def pii_cipher(settings: Settings) -> PiiCipher:
    if settings.pii_keys:
        ring = {key_id: base64.b64decode(value) for key_id, value in settings.pii_keys.items()}
    else:  # one key: the configured one, or the one `gateway up` generated
        ring = {"k0" if settings.pii_key else "dev": configured_key(settings.pii_key, settings.var_dir, "pii.key")}
    try:
        return PiiCipher(ring, settings.pii_cipher, current=settings.pii_key_id)
    except ValueError as exc:
        raise ConfigurationError(f"GATEWAY_PII_KEYS / GATEWAY_PII_KEY_ID: {exc}") from exc


def audit_signer(settings: Settings) -> AuditSigner:
    try:
        return AuditSigner(configured_key(settings.audit_key, settings.var_dir, "audit.key"), settings.audit_hash)
    except ValueError as exc:
        raise ConfigurationError(f"GATEWAY_AUDIT_KEY: {exc}") from exc


def _refuse_weak_secrets(settings: Settings, adapters: Iterable[str]) -> None:
    """GATEWAY_ENV=production: every secret set, strong and its own, before anything connects."""
    if settings.env != "production":
        return
    try:
        callers = load_callers(settings.callers_file) if settings.callers_file else {}
        check_production(settings, adapters, callers)
    except WeakSecret as exc:
        raise ConfigurationError(f"GATEWAY_ENV=production: {exc}") from exc
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"GATEWAY_CALLERS_FILE {settings.callers_file}: {exc}") from exc


async def build_services(settings: Settings, redis_url: str, *, consumer: str, api: bool,
                         adapter_classes: dict[str, type[DepartmentAdapter]] | None = None) -> Services:
    """Everything a process needs. A broken profile, callers file or JWKS refuses to start, with the reason."""
    adapters = AdapterManager(settings, adapter_classes)
    problems = settings.timing_problems() + settings.redis_problems()
    if problems:
        raise ConfigurationError("; ".join(problems))
    _refuse_weak_secrets(settings, adapters.classes)
    redis = connect(redis_url, settings)
    profiles = ProfileRegistry.load_dir(settings.profiles_dir, known_operations=adapters.known_operations())
    authenticator = identity = None
    callers: dict[str, Caller] = {}
    if settings.callers_file is not None:  # the worker too: a caller's own webhook
        try:
            callers = load_callers(settings.callers_file, profiles.codes(),
                                   {m.code for code in profiles.codes() for m in profiles.get(code).matters})
        except (OSError, ValueError, yaml.YAMLError) as exc:
            raise ConfigurationError(f"GATEWAY_CALLERS_FILE {settings.callers_file}: {exc}") from exc
    if api:
        if settings.callers_file is None:
            raise ConfigurationError("GATEWAY_CALLERS_FILE is not set: no caller could be authenticated")
        authenticator = CallerAuthenticator(callers, settings.signature_window_s)
        if settings.identity_jwks_file is None or not settings.identity_issuer:
            raise ConfigurationError("GATEWAY_IDENTITY_JWKS_FILE and GATEWAY_IDENTITY_ISSUER must be set: "
                                     "applicant assertions could not be verified")
        try:
            identity = IdentityVerifier(settings.identity_jwks_file, settings.identity_issuer,
                                        audience=settings.identity_audience, max_age_s=settings.identity_max_age_s,
                                        acr_allowed=settings.identity_acr_allowed)
        except (OSError, ValueError, jwt.PyJWTError) as exc:
            raise ConfigurationError(f"GATEWAY_IDENTITY_JWKS_FILE {settings.identity_jwks_file}: {exc}") from exc
    link_secret = settings.link_secret.encode() if settings.link_secret else stored_secret(
        settings.var_dir, "link.key", 32)
    links = LinkStore(redis, link_secret, settings.base_url, settings.link_ttl_s)
    store = CaseStore(redis, pii_cipher(settings), audit_signer(settings), settings.redis_wait_replicas,
                      settings.redis_wait_timeout_ms)
    queue = TaskQueue(redis, consumer, settings.redeliver_after_s)
    await queue.ensure_group()
    await adapters.start()
    breakers = CircuitBreakers(redis, settings.breaker_failures, settings.breaker_open_s)
    engine = Engine(settings=settings, store=store, queue=queue, adapters=adapters, profiles=profiles, links=links,
                    breakers=breakers)
    calendar = WorkingDayCalendar(settings.calendar_overrides_file, on_fallback=_calendar_fallback)
    return Services(settings=settings, redis=redis, store=store, queue=queue, profiles=profiles, adapters=adapters,
                    engine=engine, links=links, calendar=calendar,
                    authenticator=authenticator, identity=identity, callers=callers, quotas=CallerQuotas(redis))
