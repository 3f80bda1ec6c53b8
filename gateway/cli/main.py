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

from gateway.runtime import run_gateway
from gateway.settings import Settings
from gateway.store.connection import StrRedis, redacted

if TYPE_CHECKING:
    from gateway.bootstrap import Services

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
        host: str = typer.Option(None, help="API host (GATEWAY_API_HOST)")) -> None:
    """The API alone (production runs several). Refuses to start without callers and a JWKS."""
    settings = _settings(api_port=port, api_host=host)
    if not settings.callers_file or not settings.identity_jwks_file or not settings.identity_issuer:
        typer.echo("gateway api needs GATEWAY_CALLERS_FILE, GATEWAY_IDENTITY_JWKS_FILE and GATEWAY_IDENTITY_ISSUER",
                   err=True)
        raise typer.Exit(2)
    with _redis(settings) as url:
        _run(run_gateway(settings, url, api=True, worker=False, consumer=f"api-{os.getpid()}"))


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
def up(port: int = typer.Option(8080, help="API port")) -> None:
    """API, worker, embedded Redis and the mock departments together: a gateway ready to take a case."""
    from gateway.security.applicant_identity import write_demo_identity
    from gateway.security.callers import write_demo_callers
    from gateway.security.secrets import private_folder, stored_secret
    from mocks.serving import free_port

    settings = _settings(api_port=port)
    var = private_folder(settings.var_dir)  # cases (embedded Redis), secrets, the demo caller: the owner's alone
    children: list[subprocess.Popen[bytes]] = []
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
            children.append(subprocess.Popen([sys.executable, "-m", "gateway", "mocks"], env=child_env))
            _wait_for_ports(list(ports.values()), children[-1])
            # Applicant steps in compressed time too: a step left undone is reminded within 20 s, ends in 2 minutes.
            for name, value in (("GATEWAY_STEP_REMINDERS_S", "[15, 60]"), ("GATEWAY_STEP_EXPIRY_S", "120")):
                env[name] = os.environ.get(name, value)
            os.environ.update(env)
            settings = _settings(api_port=port)
            scheme = "https" if settings.tls_cert_file else "http"
            typer.echo(f"gateway up: API {scheme}://127.0.0.1:{port}  Redis {redacted(url)}  (Ctrl-C stops everything)")
            _run(run_gateway(settings, url, api=True, worker=True, consumer=f"up-{os.getpid()}"))
        finally:
            for child in children:
                if child.poll() is None:
                    child.terminate()
            for child in children:
                try:
                    child.wait(10)
                except subprocess.TimeoutExpired:
                    child.kill()
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


@audit_app.command("verify")
def audit_verify(case_id: str) -> None:
    """Recompute a case's keyed audit chain; exit 1 if any entry was altered, removed or reordered."""
    from gateway.bootstrap import audit_signer, pii_cipher
    from gateway.security.audit import AuditChain, AuditReport

    async def verify(settings: Settings, redis: StrRedis) -> AuditReport:
        chain = AuditChain(redis, audit_signer(settings), pii_cipher(settings).for_purpose("events"))
        return await chain.verify(case_id)

    report = _with_connection(verify)
    for problem in report.problems:
        typer.echo(problem)
    typer.echo(f"{case_id}: {report.entries} entries, head {report.head or '-'}: "
               f"{'intact' if report.intact else 'BROKEN'}")
    if not report.intact or not report.entries:
        raise typer.Exit(1)


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


@app.command()
def status() -> None:
    """Adapters (version, protocol, health, breaker), queue depths, DLQ, outbox, and the workers' heartbeats.
    Exit 1 when no worker is alive."""
    from gateway.cli.operator import show_status

    if not _with_services(show_status):
        raise typer.Exit(1)
