"""All settings, from the environment (prefix `GATEWAY_`, nested with `__`) with defaults a newcomer can run."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.sdk import AdapterSettings
from gateway.security.secrets import stored_secret

REPO_ROOT = Path(__file__).resolve().parent.parent

# Where `gateway mocks` serves each mock department by default (`gateway up` picks free ports instead).
DEFAULT_MOCK_PORTS = {"medical": 18101, "hrss": 18102, "tax": 18103, "housing_fund": 18104, "e_license": 18105,
                      "sms": 18106}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", env_nested_delimiter="__", extra="ignore")

    # production: refuses to start with a default, short or shared secret (gateway.security.production).
    env: Literal["development", "production"] = "development"
    # Redis: an external server when set; otherwise an embedded one persisting under var_dir.
    redis_url: str | None = None
    redis_ca_file: Path | None = None  # CA that signed the server certificate of a rediss:// Redis
    # Through Sentinel (both set): "host:port,host:port,..." and the primary's name; GATEWAY_REDIS_URL then gives
    # only the password and database number.
    redis_sentinels: str | None = None
    redis_master_name: str | None = None
    # Case creation waits until this many replicas hold the case (Redis WAIT; 0: off), at most this long, else 503.
    redis_wait_replicas: int = 0
    redis_wait_timeout_ms: int = 1000
    # A Redis Cluster: GATEWAY_REDIS_URL names any one node (docs/operations.md#redis-cluster).
    redis_cluster: bool = False
    # The keyspace's shards, each one Cluster slot with its own streams and indexes; the same on a single Redis.
    # Fixed for the life of the data: changing it re-homes every case (a migration, docs/operations.md).
    redis_shards: int = 16
    var_dir: Path = Path("var")
    # Connections per process (API and worker share one pool under `gateway up`); a request waits this long for a
    # free one, then is answered 503 service.busy. Sizing: docs/operations.md.
    redis_max_connections: int = 64
    redis_pool_timeout_s: float = 2.0

    api_host: str = "127.0.0.1"
    mock_host: str = "127.0.0.1"  # `gateway mocks` in a container for staging: 0.0.0.0
    api_port: int = 8080
    # API processes sharing api_port (SO_REUSEPORT), each with its own event loop and Redis pool (docs/operations.md).
    api_processes: int = Field(default=1, ge=1)
    # Prometheus' /metrics on its own port (api_host): then not on the public API port. Workers: `--metrics-port`.
    metrics_port: int | None = None
    # /docs, /redoc and /openapi.json on the API: GATEWAY_API_DOCS decides; unset, on except in production.
    api_docs: bool | None = None
    # How departments (callbacks) and applicants (H5 links) reach this gateway.
    public_base_url: str | None = None
    # TLS on the API (both set: https); a client CA also requires callers to present a certificate it signed.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_client_ca_file: Path | None = None

    callers_file: Path | None = None
    identity_jwks_file: Path | None = None
    identity_issuer: str | None = None
    # Applicant assertions: the `aud` they must name, their longest allowed lifetime (exp - iat), and the assurance
    # levels (`acr`) accepted; an empty list accepts any level the identity service issues.
    identity_audience: str = "flex-employment-gateway"
    identity_max_age_s: int = 900
    identity_acr_allowed: list[str] = Field(default_factory=list)
    profiles_dir: Path = REPO_ROOT / "profiles"

    adapters: dict[str, AdapterSettings] = Field(default_factory=dict)
    mock_ports: dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_MOCK_PORTS))

    # Outbox targets: the platform's webhook and the SMS gateway. Unset -> that channel is not delivered.
    webhook_url: str | None = None
    webhook_secret: str = "dev-webhook-secret"
    sms_url: str | None = None

    # Secrets generated under var_dir/secrets when unset (fine for a newcomer; production sets them).
    link_secret: str | None = None
    # The PII keyring: {key id: base64 of 32 bytes} and the id sealing new values; older keys stay to open what
    # they sealed until `gateway keys rotate` re-sealed it. `pii_key` alone is the keyring {"k0": pii_key}; with
    # neither, a key generated under var_dir/secrets (id "dev").
    pii_keys: dict[str, str] = Field(default_factory=dict)
    pii_key_id: str | None = None
    pii_key: str | None = None
    pii_cipher: Literal["aes-gcm", "sm4-gcm"] = "aes-gcm"
    # The audit chain's HMAC (SM3, GB/T 32905, where the system is assessed for 密评) and its key (base64, at least
    # 32 bytes), kept outside Redis: generated under var_dir/secrets when unset.
    audit_hash: Literal["sha256", "sm3"] = "sha256"
    audit_key: str | None = None
    # Holiday data for years chinese-calendar does not know yet; ops can mount a newer file than the packaged one.
    calendar_overrides_file: Path | None = None

    # Bounded input: bodies over these are 413 (checked from Content-Length, chunked ones counted as they arrive);
    # POST /v1/cases carries a card photo at most, every other route (callbacks included) far less.
    max_case_body_bytes: int = 256 * 1024
    max_callback_body_bytes: int = 64 * 1024
    max_json_depth: int = 32
    max_json_list_items: int = 1000
    # uvicorn: connections served at once (beyond: 503), and the largest request head (headers) it buffers.
    api_limit_concurrency: int = 1000
    # An idle keep-alive connection is closed after this long: longer than the idle timeout of what sits in front
    # (nginx 75 s, most load balancers 60 s), so the server never closes a connection its client is just reusing.
    # uvicorn's 5 s lost that race under load: an overloaded loop fired the close before reading the next request.
    api_keep_alive_s: int = 75
    api_max_header_bytes: int = 16 * 1024

    idempotency_ttl_s: int = 7 * 24 * 3600
    signature_window_s: int = 300
    link_ttl_s: int = 24 * 3600  # an H5 link in an SMS works this long (and payment / photo links only once)
    # Retention: a finished case (every task terminal, none failed) leaves Redis this many days after its last
    # change, its audit chain exported first to retention_export_dir (default var_dir/audit-export); 0 keeps cases
    # for ever. A worker sweeps at most once per retention_sweep_interval_s (one worker at a time), `gateway
    # retention sweep` on demand.
    retention_days: float = Field(default=30.0, ge=0)
    retention_export_dir: Path | None = None
    retention_sweep_interval_s: float = Field(default=3600.0, gt=0)

    worker_concurrency: int = 16
    department_concurrency: int = 8  # in-flight calls per department per worker process
    retry_attempts: int = 8
    retry_max_s: float = 60.0
    retry_initial_s: float = 0.2
    retry_cap_s: float = 5.0
    # A message idle this long is reclaimed from a dead worker; live workers refresh theirs every quarter of it.
    redeliver_after_s: float = 30.0
    poll_initial_s: float = 1.0
    poll_cap_s: float = 60.0
    breaker_failures: int = 5
    breaker_open_s: float = 10.0
    outbox_timeout_s: float = 5.0  # per delivery to the webhook or the SMS gateway
    # An outbox event idle this long is reclaimed (a dead dispatcher's, or one waiting for its next try); live
    # dispatchers refresh the events in hand every quarter of it, so a slow delivery is never posted twice.
    outbox_redeliver_after_s: float = 5.0
    outbox_concurrency: int = 64  # events in hand per dispatcher process
    outbox_retry_cap_s: float = 60.0
    outbox_max_attempts: int = 500  # ~8 hours at the cap before an event is parked for ops

    # The applicant's H5 steps (pay, deposit, photo) where the profile names no schedule: SMS reminders with a fresh
    # link this many seconds after the step began, then the task ends `expired`. `gateway up` compresses them.
    step_reminders_s: list[float] = Field(default_factory=lambda: [24 * 3600.0, 3 * 24 * 3600.0])
    step_expiry_s: float = Field(default=7 * 24 * 3600.0, gt=0)
    # The web console at /console/: on when an operators file is given (`gateway up` writes a demo one) outside
    # production, off otherwise; GATEWAY_CONSOLE=true/false decides whatever the rest. Its session cookies are
    # signed with console_session_key (base64, at least 32 bytes; generated under var_dir/secrets when unset).
    console: bool | None = None
    operators_file: Path | None = None
    console_session_key: str | None = None
    console_session_ttl_s: int = 8 * 3600
    # The case timeline links each change's trace id to the trace backend with this template, e.g.
    # "http://jaeger:16686/trace/{trace_id}"; unset, the trace id is shown as text.
    console_trace_url: str | None = None
    # Console sign-in with the identity service (OIDC authorization code + PKCE), beside passwords, when an issuer
    # and client id are set. The role comes from the id_token claim console_oidc_role_claim (values mapped by
    # console_oidc_roles, e.g. {"gw-ops": "operator"}; unmapped, the values `viewer` and `operator` themselves), or,
    # with no claim named, from the operators file entry whose oidc_subject is the token's `sub`.
    console_oidc_issuer: str | None = None
    console_oidc_client_id: str | None = None
    console_oidc_client_secret: str | None = None
    console_oidc_role_claim: str | None = None
    console_oidc_roles: dict[str, Literal["viewer", "operator"]] = Field(default_factory=dict)
    console_oidc_algorithms: list[str] = Field(default_factory=lambda: ["RS256", "PS256", "ES256", "EdDSA"])

    log_level: str = "INFO"
    log_json: bool = False

    def timing_problems(self) -> list[str]:
        """Timings that cannot work together: a consumer refreshes the entries in its hands every quarter of the
        reclaim idle time and blocks at most 0.2 s per read, so a reclaim idle time under 1 s would let a live
        consumer's entries be taken over between two refreshes. Steps longer than the idle time are fine: the
        refresh keeps them (tested with a department and a webhook slower than the idle time)."""
        return [f"{name} ({value:g} s) must be at least 1 s" for name, value in (
            ("GATEWAY_REDELIVER_AFTER_S", self.redeliver_after_s),
            ("GATEWAY_OUTBOX_REDELIVER_AFTER_S", self.outbox_redeliver_after_s)) if value < 1]

    def redis_problems(self) -> list[str]:
        """Redis settings that cannot work together."""
        problems = []
        if not 1 <= self.redis_shards <= 16384:
            problems.append(f"GATEWAY_REDIS_SHARDS ({self.redis_shards}) must be 1..16384 (Cluster slots)")
        if (self.redis_cluster or "+cluster://" in (self.redis_url or "")) and self.redis_wait_replicas:
            problems.append("GATEWAY_REDIS_WAIT_REPLICAS works with one primary and its replicas, not with a Redis "
                            "Cluster: leave it 0 there")
        return problems

    @property
    def console_enabled(self) -> bool:
        """GATEWAY_CONSOLE decides when set; otherwise on with an operators file, and never by default in
        production."""
        if self.console is not None:
            return self.console
        return self.operators_file is not None and self.env != "production"

    def adapter(self, name: str) -> AdapterSettings:
        configured = self.adapters.get(name) or AdapterSettings(
            base_url=f"http://127.0.0.1:{self.mock_ports.get(name, 0)}"
        )
        if configured.callback_secret:
            return configured
        # Development: a key of its own per department, which `gateway mocks` hands to that mock.
        return configured.model_copy(update={"callback_secret": generated_callback_secret(self.var_dir, name)})

    @property
    def audit_export_dir(self) -> Path:
        return self.retention_export_dir or self.var_dir / "audit-export"

    @property
    def base_url(self) -> str:
        scheme = "https" if self.tls_cert_file else "http"
        return (self.public_base_url or f"{scheme}://{self.api_host}:{self.api_port}").rstrip("/")


@lru_cache
def generated_callback_secret(var_dir: Path, adapter: str) -> str:
    # Read once per process: `adapter()` is asked on every department call, and reading the file (with its folder's
    # permission check) cost ~85 µs each time. The file never changes once written (O_EXCL).
    return stored_secret(var_dir, f"callback-{adapter}.key", 32).hex()


@lru_cache
def get_settings() -> Settings:
    return Settings()
