"""The `gateway` command: `up` for a newcomer, `api` / `worker` / `mocks` as production runs them, and ops tools."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import structlog
import typer

from gateway.runtime import Supervisor, ensure_port_free, run_gateway
from gateway.settings import Settings
from gateway.store.connection import StrRedis, redacted

if TYPE_CHECKING:
    from gateway.bootstrap import Services
    from gateway.security.audit import AuditChain, AuditReport, ExportedChain

T = TypeVar("T")

app = typer.Typer(help="灵活就业参保一件事 gateway", no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False)
profiles_app = typer.Typer(help="Region profiles", no_args_is_help=True)
adapters_app = typer.Typer(help="Department adapters", no_args_is_help=True)
dlq_app = typer.Typer(help="Dead-lettered tasks", no_args_is_help=True)
cases_app = typer.Typer(help="Cases, as ops look at them", no_args_is_help=True)
app.add_typer(profiles_app, name="profiles")
app.add_typer(adapters_app, name="adapters")
app.add_typer(dlq_app, name="dlq")
app.add_typer(cases_app, name="cases")
log = structlog.get_logger("gateway.cli")


def _settings(**overrides: Any) -> Settings:
    from gateway.observability.logging import configure_logging

    settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    configure_logging(settings.log_level, settings.log_json)
    return settings


def _on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


def _run(coroutine: Any) -> Any:
    """Run, turning a refused configuration (profile, callers, JWKS) into its message and exit code 2."""
    from gateway.bootstrap import ConfigurationError
    from gateway.profiles.loader import ProfileError

    try:
        return asyncio.run(coroutine)
    except (ConfigurationError, ProfileError) as exc:
        typer.echo(f"gateway refuses to start: {exc}", err=True)
        raise typer.Exit(2) from exc


@contextlib.contextmanager
def _redis(settings: Settings) -> Iterator[str]:
    """This command's Redis URL; an embedded server the command had to start stops with it."""
    from gateway.store.connection import resolve_redis_url

    url, embedded = resolve_redis_url(settings)
    try:
        yield url
    finally:
        if embedded:
            embedded.stop()


def _with_services(work: Callable[[Services], Awaitable[T]]) -> T:
    """Run an ops command's work with the gateway's services, closed afterwards."""
    from gateway.bootstrap import build_services

    settings = _settings()

    async def run() -> T:
        services = await build_services(settings, url, consumer="ops", api=False)
        try:
            return await work(services)
        finally:
            await services.close()

    with _redis(settings) as url:
        return asyncio.run(run())


def _with_connection(work: Callable[[Settings, StrRedis], Awaitable[T]]) -> T:
    """Run an ops command's work with a bare Redis connection, for what needs no adapters or profiles."""
    from gateway.store.connection import connect

    settings = _settings()

    async def run() -> T:
        redis = connect(url, settings)
        try:
            return await work(settings, redis)
        finally:
            await redis.aclose()

    with _redis(settings) as url:
        return asyncio.run(run())


@app.command()
def api(port: int = typer.Option(None, help="API port (GATEWAY_API_PORT)"),
        host: str = typer.Option(None, help="API host (GATEWAY_API_HOST)"),
        processes: int = typer.Option(None, "--processes", min=1,
                                      help="API processes sharing the port (GATEWAY_API_PROCESSES)"),
        reuse_port: bool = typer.Option(False, "--reuse-port", hidden=True,
                                        help="one of the processes `--processes N` starts")) -> None:
    """The API alone (production runs several). Refuses to start without callers and a JWKS."""
    settings = _settings(api_port=port, api_host=host, api_processes=processes)
    if not settings.callers_file or not settings.identity_jwks_file or not settings.identity_issuer:
        typer.echo("gateway api needs GATEWAY_CALLERS_FILE, GATEWAY_IDENTITY_JWKS_FILE and GATEWAY_IDENTITY_ISSUER",
                   err=True)
        raise typer.Exit(2)
    with _redis(settings) as url:
        if reuse_port or settings.api_processes == 1:
            _run(run_gateway(settings, url, api=True, worker=False, consumer=f"api-{os.getpid()}",
                             reuse_port=reuse_port))
            return
        supervisor = Supervisor(settings.var_dir)
        try:
            _serve_in_processes(supervisor, settings, url, dict(os.environ), workers=0)
        finally:
            supervisor.stop()


def _serve_in_processes(supervisor: Supervisor, settings: Settings, url: str, env: dict[str, str],
                        workers: int) -> None:
    """`settings.api_processes` API processes on the API port and `workers` worker processes (each with its outbox
    dispatcher), all on the Redis at `url`, until a stop signal or one of them ends (then exit 1)."""
    try:
        ensure_port_free(settings.api_host, settings.api_port)
    except OSError as exc:
        typer.echo(f"gateway cannot serve on {settings.api_host}:{settings.api_port}: {exc}", err=True)
        raise typer.Exit(1) from exc
    # Every child on the same Redis; the workers also need the API's address for the links they send.
    env = {**env, "GATEWAY_REDIS_URL": url, "GATEWAY_API_HOST": settings.api_host,
           "GATEWAY_API_PORT": str(settings.api_port)}
    gateway = [sys.executable, "-m", "gateway"]
    for number in range(1, settings.api_processes + 1):
        supervisor.start(f"api-{number}", [*gateway, "api", "--port", str(settings.api_port),
                                           "--host", settings.api_host, "--reuse-port"], env)
    # Its metrics reach /metrics through the shared folder; the metrics port, if any, is the APIs'.
    worker_env = {k: v for k, v in env.items() if k != "GATEWAY_METRICS_PORT"}
    for number in range(1, workers + 1):
        supervisor.start(f"worker-{number}", [*gateway, "worker"], worker_env)
    ended = supervisor.wait()
    if ended is not None:
        typer.echo(f"{ended} exited with {supervisor.children[ended].returncode}: stopping the gateway", err=True)
        raise typer.Exit(1)


@app.command()
def worker(metrics_port: int = typer.Option(0, help="serve this process's /metrics on this port (0: off)"),
           name: str = typer.Option(None, help="consumer name in the group (default: host-pid)")) -> None:
    """A worker: task stream, department calls, outbox delivery. Run as many as needed."""
    settings = _settings()
    consumer = name or f"{os.uname().nodename}-{os.getpid()}"
    with _redis(settings) as url:
        _run(run_gateway(settings, url, api=False, worker=True, consumer=consumer, metrics_port=metrics_port or None))


@app.command()
def mocks(only: list[str] = typer.Option(None, "--only", help="serve just these mocks")) -> None:
    """Every mock department on its loopback port (GATEWAY_MOCK_PORTS); MOCK_FAULTS applies to all."""
    from mocks.serving import serve_mocks

    settings = _settings()
    ports = {name: port for name, port in settings.mock_ports.items() if not only or name in only}
    typer.echo("mocks: " + ", ".join(f"{n}=http://{settings.mock_host}:{p}" for n, p in ports.items()))
    # Each mock department signs its callbacks with the key its adapter checks: given, or generated under var/.
    for name in ports.keys() - {"sms"}:
        os.environ.setdefault(f"MOCK_{name.upper()}_CALLBACK_SECRET", settings.adapter(name).callback_secret)

    async def run() -> None:
        stop = asyncio.Event()
        _on_signals(stop)
        await serve_mocks(ports, stop, settings.mock_host)

    asyncio.run(run())


@app.command()
def up(port: int = typer.Option(8080, help="API port"),
       processes: int = typer.Option(1, "--processes", min=1, help="API processes sharing the port"),
       workers: int = typer.Option(1, "--workers", min=1, help="worker processes (each with its outbox dispatcher)"),
       ) -> None:
    """API, worker, embedded Redis and the mock departments together: a gateway ready to take a case. Each part is
    its own process, so a busy worker never holds up the API's event loop."""
    from gateway.security.applicant_identity import write_demo_identity
    from gateway.security.callers import write_demo_callers
    from gateway.security.secrets import private_folder, stored_secret
    from mocks.serving import free_port

    settings = _settings(api_port=port)
    var = private_folder(settings.var_dir)  # cases (embedded Redis), secrets, the demo caller: the owner's alone
    supervisor = Supervisor(var)
    # Children stop before the embedded Redis they use.
    with _redis(settings) as url:
        try:
            env: dict[str, str] = {}
            if not settings.callers_file:
                callers = var / "demo-callers.json"
                caller = write_demo_callers(callers) if not callers.exists() else None
                env["GATEWAY_CALLERS_FILE"] = str(callers)
                shown = caller or json.loads(callers.read_text())[0]
                shown = shown if isinstance(shown, dict) else shown.__dict__
                typer.echo(f"demo caller: app_id={shown['app_id']} secret={shown['secret']} (from {callers})")
            if not settings.operators_file:
                env["GATEWAY_OPERATORS_FILE"] = str(_demo_operators(var, port))
            if not settings.identity_jwks_file:
                jwks, key = write_demo_identity(var / "identity", "demo-idp")
                env.update(GATEWAY_IDENTITY_JWKS_FILE=str(jwks), GATEWAY_IDENTITY_ISSUER="demo-idp")
                typer.echo(f"demo identity service: issuer demo-idp, JWKS {jwks}, signing key {key} "
                           "(gateway.client.mint_demo_assertion uses it)")
            ports = {name: free_port() for name in settings.mock_ports}
            env["GATEWAY_MOCK_PORTS"] = json.dumps(ports)
            for name, mock_port in ports.items():
                if name not in settings.adapters:
                    env[f"GATEWAY_ADAPTERS__{name.upper()}__BASE_URL"] = f"http://127.0.0.1:{mock_port}"
                    # Both sides of the request signature: the gateway signs, the mock department checks.
                    signing = stored_secret(var, f"signing-{name}", 32).hex()
                    env[f"GATEWAY_ADAPTERS__{name.upper()}__SIGNING_SECRET"] = signing
                    env[f"MOCK_{name.upper()}_GATEWAY_SECRET"] = signing
            if not settings.sms_url:
                env["GATEWAY_SMS_URL"] = f"http://127.0.0.1:{ports['sms']}"
            child_env = {**os.environ, **env, "MOCK_APPLICANT_DELAY_S": os.environ.get("MOCK_APPLICANT_DELAY_S", "2")}
            mocks = supervisor.start("mocks", [sys.executable, "-m", "gateway", "mocks"], child_env)
            _wait_for_ports(list(ports.values()), mocks)
            # Applicant steps in compressed time too: a step left undone is reminded within 20 s, ends in 2 minutes.
            for name, value in (("GATEWAY_STEP_REMINDERS_S", "[15, 60]"), ("GATEWAY_STEP_EXPIRY_S", "120")):
                env[name] = os.environ.get(name, value)
            os.environ.update(env)
            settings = _settings(api_port=port, api_processes=processes)
            scheme = "https" if settings.tls_cert_file else "http"
            typer.echo(f"gateway up: API {scheme}://127.0.0.1:{port}  Redis {redacted(url)}  (Ctrl-C stops everything)")
            typer.echo(f"processes: {processes} API, {workers} worker, mocks, Redis")
            _serve_in_processes(supervisor, settings, url, dict(os.environ), workers=workers)
        finally:
            supervisor.stop()
            typer.echo("gateway stopped")


def _demo_operators(var: Path, port: int) -> Path:
    """The console's demo operator and viewer; their passwords are kept under var/secrets to be shown again."""
    from gateway.console.operators import write_demo_operators

    path, passwords_path = var / "demo-operators.json", var / "secrets" / "console-demo-passwords.json"
    if not path.exists() or not passwords_path.exists():
        passwords = write_demo_operators(path)
        passwords_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        passwords_path.write_text(json.dumps(passwords), encoding="utf-8")
        passwords_path.chmod(0o600)
    for operator_id, password in json.loads(passwords_path.read_text(encoding="utf-8")).items():
        typer.echo(f"demo console {operator_id}: password={password} (http://127.0.0.1:{port}/console/, {path})")
    return path


def _wait_for_ports(ports: list[int], process: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    import socket

    deadline = time.monotonic() + timeout_s
    for port in ports:
        while True:
            if process.poll() is not None:
                typer.echo(f"mock departments exited with {process.returncode}", err=True)
                raise typer.Exit(1)
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline:
                typer.echo("mock departments did not start in time", err=True)
                raise typer.Exit(1)
            time.sleep(0.1)


@profiles_app.command("check")
def profiles_check(
    file: Path,
    strict: bool = typer.Option(False, "--strict", help="List the placeholders (values the seeds do not give) and "
                                "fail when there are any: the production gate."),
) -> None:
    """Validate a profile file; every problem with where it is."""
    from gateway.departments.registry import discover
    from gateway.profiles.check import check_profile_file, placeholder_lines

    known = {name: set(found.cls.operations) for name, found in discover().items()}
    result = check_profile_file(file, known_operations=known)
    for problem in result.problems:
        typer.echo(problem)
    if result.problems:
        raise typer.Exit(1)
    if strict and result.placeholders:
        for line in placeholder_lines(file, result.placeholders):
            typer.echo(line)
        raise typer.Exit(1)
    count = len(result.placeholders)
    typer.echo(f"{file}: ok" + (f" ({count} placeholders; --strict lists them)" if count else ""))


@adapters_app.command("list")
def adapters_list(check_health: bool = typer.Option(True, "--health/--no-health")) -> None:
    """Installed adapters (entry-point group gateway.adapters), their versions, operations and health."""
    from gateway.departments.registry import AdapterManager, discover

    found = discover()
    health: dict[str, Any] = {}
    if check_health:
        async def probe() -> dict[str, Any]:
            manager = AdapterManager(_settings(), {n: d.cls for n, d in found.items()})
            await manager.start()
            try:
                return await manager.health()
            finally:
                await manager.close()

        health = asyncio.run(probe())
    for name, item in sorted(found.items()):
        state = ("up" if health.get(name) else "down") if check_health else "-"
        typer.echo(f"{name:14} {item.version:8} {item.distribution:28} {item.cls.protocol:5} {state:5} "
                   f"{', '.join(item.cls.operations)}")


@adapters_app.command("new")
def adapters_new(name: str, target: Path = typer.Option(Path("."), help="folder to create the package in")) -> None:
    """Scaffold a department adapter package: adapter, status table, mock, conformance test, entry point."""
    from gateway.cli.scaffold import ScaffoldError, scaffold_adapter

    try:
        created = scaffold_adapter(name, target)
    except ScaffoldError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"created {created}; next: pip install -e {created} && gateway adapters list "
               "(see docs/integrators.md)")


audit_app = typer.Typer(help="Audit chains", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
outbox_app = typer.Typer(help="Events parked after their receivers refused them too often", no_args_is_help=True)
app.add_typer(outbox_app, name="outbox")


@outbox_app.command("replay")
def outbox_replay() -> None:
    """Put parked events back on the outbox: delivered again, each once per channel, with a fresh back-off."""
    from gateway.bootstrap import pii_cipher
    from gateway.notifications.outbox import open_event
    from gateway.store import keys

    async def replay(settings: Settings, redis: StrRedis) -> int:
        events = pii_cipher(settings).for_purpose("events")
        replayed = 0
        while (raw := await redis.lpop(keys.OUTBOX_DEAD)) is not None:
            fields = json.loads(raw)
            event_id = open_event(events, fields)["event_id"]
            await redis.delete(keys.outbox_retry(event_id))
            await redis.xadd(keys.outbox_stream(keys.shard_of(fields["case_id"])), fields)
            replayed += 1
        return replayed

    count = _with_connection(replay)
    typer.echo(f"replayed {count} parked event(s)")


def _audit_chain(settings: Settings, redis: StrRedis) -> AuditChain:
    from gateway.bootstrap import audit_signer, pii_cipher
    from gateway.security.audit import AuditChain

    return AuditChain(redis, audit_signer(settings), pii_cipher(settings).for_purpose("events"))


@audit_app.command("verify")
def audit_verify(case_id: str = typer.Argument(None, help="a case in Redis"),
                 file: Path = typer.Option(None, "--file", help="an exported chain (gateway audit export)")) -> None:
    """Recompute a case's keyed audit chain, in Redis or exported; exit 1 if any entry was altered, removed or
    reordered."""
    if (case_id is None) == (file is None):
        typer.echo("give a CASE_ID or --file", err=True)
        raise typer.Exit(2)

    async def verify(settings: Settings, redis: StrRedis) -> AuditReport:
        chain = _audit_chain(settings, redis)
        return chain.verify_export(file) if file is not None else await chain.verify(case_id)

    report = _with_connection(verify)
    for problem in report.problems:
        typer.echo(problem)
    typer.echo(f"{report.case_id}: {report.entries} entries, head {report.head or '-'}: "
               f"{'intact' if report.intact else 'BROKEN'}")
    if not report.intact or not report.entries:
        raise typer.Exit(1)


@audit_app.command("export")
def audit_export(case_id: str,
                 to: Path = typer.Option(None, "--to", help="folder (default GATEWAY_RETENTION_EXPORT_DIR)")) -> None:
    """Write a case's audit chain to FOLDER/CASE_ID.json, verifiable with `gateway audit verify --file`."""

    async def export(settings: Settings, redis: StrRedis) -> ExportedChain | None:
        return await _audit_chain(settings, redis).export(case_id, to or settings.audit_export_dir)

    exported = _with_connection(export)
    if exported is None:
        typer.echo(f"{case_id}: no audit chain", err=True)
        raise typer.Exit(1)
    typer.echo(str(exported.path))


retention_app = typer.Typer(help="Finished cases leaving Redis (GATEWAY_RETENTION_DAYS)", no_args_is_help=True)
app.add_typer(retention_app, name="retention")


@retention_app.command("sweep")
def retention_sweep(dry_run: bool = typer.Option(False, "--dry-run", help="list what is due, change nothing"),
                    days: float = typer.Option(None, help="instead of GATEWAY_RETENTION_DAYS"),
                    limit: int = typer.Option(100_000, help="at most this many cases")) -> None:
    """Export the audit chain of every finished case older than the retention, then remove the case from Redis."""
    from gateway.store.retention import SweepReport, sweep

    async def run(settings: Settings, redis: StrRedis) -> SweepReport:
        retention_days = settings.retention_days if days is None else days
        if retention_days <= 0:
            typer.echo("retention is off (GATEWAY_RETENTION_DAYS=0): nothing removed", err=True)
            return SweepReport()
        return await sweep(redis, _audit_chain(settings, redis), settings.audit_export_dir,
                           retention_days * 86400, dry_run=dry_run, limit=limit)

    report = _with_connection(run)
    for case_id in report.due:
        typer.echo(case_id)
    done = "due (dry run: nothing changed)" if dry_run else f"removed {len(report.removed)}, kept {len(report.kept)}"
    typer.echo(f"{report.examined} case(s) examined, {len(report.due)} {done}")


operators_app = typer.Typer(help="Console operators (GATEWAY_OPERATORS_FILE)", no_args_is_help=True)
app.add_typer(operators_app, name="operators")


@operators_app.command("hash")
def operators_hash(password: str = typer.Option(..., prompt=True, hide_input=True, confirmation_prompt=True,
                                                help="read from the terminal when not given")) -> None:
    """Print the scrypt hash of a password for an operators-file entry's password_hash."""
    from gateway.console.operators import hash_password

    typer.echo(hash_password(password))


keys_app = typer.Typer(help="The PII keyring", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("rotate")
def keys_rotate(batch: int = typer.Option(500, help="keys per SCAN batch")) -> None:
    """Re-seal every sealed value under the current PII key (GATEWAY_PII_KEY_ID), next to the running gateway.

    Give every gateway process the new keyring first; keep the old key in it until a run reports nothing left.
    """
    from gateway.bootstrap import pii_cipher
    from gateway.store.rekey import KeyRotation, RotationCounts

    async def rotate(settings: Settings, redis: StrRedis) -> tuple[str, RotationCounts]:
        cipher = pii_cipher(settings)
        return cipher.current, await KeyRotation(redis, cipher, batch).run()

    current, counts = _with_connection(rotate)
    typer.echo(f"key {current}: re-sealed {counts.resealed}, already current {counts.current}, "
               f"rewritten meanwhile {counts.changed_meanwhile}, outbox events waiting {counts.outbox_waiting}")
    if counts.changed_meanwhile or counts.outbox_waiting:
        typer.echo("run again once the outbox has drained to reach the values changed meanwhile")


@dlq_app.command("list")
def dlq_list() -> None:
    """Tasks that failed after exhausting their retries, with the last error."""
    async def show(services: Services) -> None:
        entries = await services.queue.dead_letters()
        for case_id, matter, _failed_at in entries:
            task = await services.store.get_task(case_id, matter)
            if task is not None:
                typer.echo(f"{case_id} {matter:30} {task.adapter:12} {task.status.value:8} "
                           f"attempts={task.attempts} error={task.last_error}")
        typer.echo(f"{len(entries)} dead-lettered task(s)")

    _with_services(show)


@dlq_app.command("replay")
def dlq_replay(task: str = typer.Option(None, "--task", help="CASE_ID:MATTER"),
               adapter: str = typer.Option(None, "--adapter", help="every dead-lettered task of this adapter")) -> None:
    """Put dead-lettered tasks back on the queue (failed -> queued)."""
    from gateway.orchestration.interventions import replay_dead_letters

    if not task and not adapter:
        typer.echo("say which: --task CASE_ID:MATTER or --adapter NAME", err=True)
        raise typer.Exit(2)

    async def replay(services: Services) -> int:
        return await replay_dead_letters(services, actor="cli", task=task, adapter=adapter)

    count = _with_services(replay)
    typer.echo(f"replayed {count} task(s)")
    if task and not count:
        raise typer.Exit(1)


@cases_app.command("show")
def cases_show(case_id: str) -> None:
    """A case's history: every change with its time, actor, department request and trace id; personal data masked."""
    from gateway.cli.operator import show_case

    async def show(settings: Settings, redis: StrRedis) -> bool:
        return await show_case(settings, redis, case_id)

    if not _with_connection(show):
        typer.echo(f"no case {case_id}", err=True)
        raise typer.Exit(1)


@cases_app.command("resend-link")
def cases_resend_link(case_id: str, matter: str,
                      reason: str = typer.Option(..., "--reason", help="why (kept on the audit chain)")) -> None:
    """Send the applicant a fresh link (SMS and webhook) for the H5 step (pay, deposit, photo) a task waits on."""
    from gateway.orchestration.interventions import resend_link

    if len(reason.strip()) < 2:
        typer.echo("give a reason: --reason TEXT", err=True)
        raise typer.Exit(2)

    async def resend(services: Services) -> bool:
        return await resend_link(services, case_id, matter, actor="cli", reason=reason.strip())

    if not _with_services(resend):
        typer.echo(f"{case_id} {matter} waits on no applicant step: nothing sent", err=True)
        raise typer.Exit(1)
    typer.echo(f"sent a fresh link for {case_id} {matter}")


@cases_app.command("cancel")
def cases_cancel(case_id: str,
                 reason: str = typer.Option(..., "--reason", help="why (kept on the audit chain)")) -> None:
    """Cancel every task of a case not yet settled (the same step as the console's cancel); exit 1 when none was."""
    from gateway.orchestration.interventions import cancel_case

    if len(reason.strip()) < 2:
        typer.echo("give a reason: --reason TEXT", err=True)
        raise typer.Exit(2)

    async def cancel(services: Services) -> list[str]:
        return await cancel_case(services, case_id, actor="cli", reason=reason.strip())

    cancelled = _with_services(cancel)
    if not cancelled:
        typer.echo(f"{case_id}: no case, or nothing left to cancel", err=True)
        raise typer.Exit(1)
    typer.echo(f"cancelled {len(cancelled)} task(s) of {case_id}: {' '.join(cancelled)}")


@app.command()
def status() -> None:
    """Adapters (version, protocol, health, breaker), queue depths, DLQ, outbox, and the workers' heartbeats.
    Exit 1 when no worker is alive."""
    from gateway.cli.operator import show_status

    if not _with_services(show_status):
        raise typer.Exit(1)
