"""The deploy files, checked by reading them (no Docker engine here): they parse, every metric and label they query
exists in gateway/observability/metrics.py, every alert links to a runbook section, and the wiring agrees with the
settings and the CLI."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

import gateway.observability.metrics as gateway_metrics
from gateway.settings import DEFAULT_MOCK_PORTS, Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"
COMPOSE = DEPLOY / "compose.yaml"
DASHBOARD = DEPLOY / "grafana" / "dashboard.json"
PROVISIONING = DEPLOY / "grafana" / "provisioning"
OPERATIONS = ROOT / "docs" / "operations.md"
DOCKERFILE = ROOT / "Dockerfile"

# Labels Prometheus adds to every scraped series, and the bucket label of histograms.
TARGET_LABELS = {"instance", "job"}
SELECTOR = re.compile(r"\b(gateway_[a-z0-9_]+)\b(\s*\{[^}]*\})?")
LABEL_MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
GROUPING = re.compile(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)")
# Not settings fields: read by the image's HEALTHCHECK.
NON_SETTINGS_ENV = {"GATEWAY_HEALTHCHECK_URL"}


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def exposed_series() -> dict[str, set[str]]:
    """Every sample name the gateway's metrics expose, with the labels each sample carries."""
    series: dict[str, set[str]] = {}
    for value in vars(gateway_metrics).values():
        if not isinstance(value, MetricWrapperBase):
            continue
        labels = set(value._labelnames)
        for family in value.describe():
            if family.type == "counter":
                series[f"{family.name}_total"] = labels
                series[f"{family.name}_created"] = labels
            elif family.type == "histogram":
                series[f"{family.name}_bucket"] = labels | {"le"}
                for suffix in ("_sum", "_count", "_created"):
                    series[family.name + suffix] = labels
            elif family.type == "summary":
                for suffix in ("", "_sum", "_count", "_created"):
                    series[family.name + suffix] = labels | ({"quantile"} if not suffix else set())
            else:
                series[family.name] = labels
    return series


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(ALERTS)["groups"] for rule in group["rules"]]


def dashboard_queries() -> list[str]:
    """Every PromQL expression in the dashboard: panel targets and template variable queries."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                # "query" is also the datasource variable's plugin type ("prometheus"): only PromQL has "(".
                if isinstance(value, str) and (key in ("expr", "definition") or (key == "query" and "(" in value)):
                    found.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(json.loads(DASHBOARD.read_text(encoding="utf-8")))
    return found


def all_queries() -> list[tuple[str, str]]:
    return ([(f"alert {r['alert']}", str(r["expr"])) for r in alert_rules()]
            + [("dashboard", q) for q in dashboard_queries()])


def metric_problems(where: str, expr: str, series: dict[str, set[str]]) -> list[str]:
    problems: list[str] = []
    used_labels: set[str] = set(TARGET_LABELS)
    for name, selector in SELECTOR.findall(expr):
        if name not in series:
            problems.append(f"{where}: {name} is not exposed by gateway/observability/metrics.py")
            continue
        used_labels |= series[name]
        for label in LABEL_MATCHER.findall(selector or ""):
            if label not in series[name] | TARGET_LABELS:
                problems.append(f"{where}: {name} has no label {label!r}")
    for group in GROUPING.findall(expr):
        for label in (part.strip() for part in group.split(",")):
            if label and label not in used_labels:
                problems.append(f"{where}: grouping label {label!r} is on none of the metrics queried")
    return problems


def github_anchor(heading: str) -> str:
    text = heading.strip().lower().replace("`", "")
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def runbook_anchors() -> set[str]:
    return {github_anchor(line.lstrip("#")) for line in OPERATIONS.read_text(encoding="utf-8").splitlines()
            if re.match(r"#{1,6} ", line)}


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    instructions: list[tuple[str, str]] = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


# ---- parsing ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", [ALERTS, PROMETHEUS, COMPOSE, *sorted(PROVISIONING.rglob("*.yaml"))],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_yaml_files_parse(path: Path) -> None:
    assert isinstance(load_yaml(path), dict)


def test_dashboard_is_json_with_unique_panel_ids() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    assert all(panel.get("targets") for panel in dashboard["panels"] if panel["type"] != "row")


# ---- metric names and labels ---------------------------------------------------------------------------------------
def test_series_parser_sees_every_kind_of_metric() -> None:
    series = exposed_series()
    assert "gateway_api_requests_total" in series
    assert {"le", "adapter", "operation"} <= series["gateway_department_call_duration_seconds_bucket"]
    assert "gateway_breaker_open" in series
    assert "gateway_api_requests" not in series


def test_checker_catches_a_wrong_metric_or_label() -> None:
    series = exposed_series()
    assert metric_problems("t", 'sum by (adapter) (rate(gateway_department_calls_total{outcome="ok"}[5m]))',
                           series) == []
    assert metric_problems("t", "rate(gateway_department_calls[5m])", series)
    assert metric_problems("t", 'rate(gateway_department_calls_total{department="x"}[5m])', series)
    assert metric_problems("t", "sum by (department) (rate(gateway_department_calls_total[5m]))", series)


def test_every_metric_and_label_queried_exists() -> None:
    series = exposed_series()
    problems = [p for where, expr in all_queries() for p in metric_problems(where, expr, series)]
    assert problems == []


def test_dashboard_covers_what_ops_watch() -> None:
    queried = " ".join(dashboard_queries())
    for family in ("gateway_api_requests_total", "gateway_api_request_duration_seconds_bucket",
                   "gateway_department_calls_total", "gateway_department_call_duration_seconds_bucket",
                   "gateway_task_transitions_total", "gateway_unknown_native_status_total",
                   "gateway_tasks_dead_lettered_total", "gateway_breaker_open", "gateway_outbox_deliveries_total",
                   "gateway_overdue_cases", "gateway_calendar_fallback_total", "gateway_task_stream_pending",
                   "gateway_worker_heartbeat_timestamp_seconds", "gateway_dead_letter_tasks",
                   "gateway_application_problems_total"):
        assert family in queried, f"no dashboard panel queries {family}"


# ---- alerts ------------------------------------------------------------------------------------------------------
def test_alerts_have_severity_bilingual_summary_and_a_runbook_section() -> None:
    anchors = runbook_anchors()
    names = [rule["alert"] for rule in alert_rules()]
    assert len(names) == len(set(names)), "alert names must be unique"
    for rule in alert_rules():
        name = rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, name
        annotations = rule["annotations"]
        assert annotations["summary"].isascii(), f"{name}: summary is the English one"
        assert re.search(r"[\u4e00-\u9fff]", annotations["summary_zh"]), f"{name}: summary_zh is the Chinese one"
        path, _, anchor = annotations["runbook_url"].partition("#")
        assert path == "docs/operations.md", name
        assert anchor in anchors, f"{name}: docs/operations.md has no heading for #{anchor}"


def test_the_alerts_ops_asked_for_exist() -> None:
    queried = {name for rule in alert_rules() for name, _ in SELECTOR.findall(str(rule["expr"]))}
    for family in ("gateway_unknown_native_status_total", "gateway_tasks_dead_lettered_total", "gateway_breaker_open",
                   "gateway_department_calls_total", "gateway_department_call_duration_seconds_bucket",
                   "gateway_overdue_cases", "gateway_calendar_fallback_total", "gateway_outbox_deliveries_total",
                   "gateway_illegal_transitions_total", "gateway_api_requests_total", "gateway_task_stream_pending",
                   "gateway_worker_heartbeat_timestamp_seconds"):
        assert family in queried, f"no alert on {family}"


def promtool() -> str:
    """Debian's `prometheus` package brings promtool; installed here when missing (the suite's own set-up)."""
    found = shutil.which("promtool")
    if found is None:
        subprocess.run(["apt-get", "update", "-qq"], check=True, capture_output=True, timeout=600)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "prometheus"], check=True,
                       capture_output=True, timeout=900, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        found = shutil.which("promtool")
    assert found, "promtool is not installed and could not be (apt-get install prometheus)"
    return found


def test_promtool_accepts_the_rules_and_the_config() -> None:
    tool = promtool()
    rules = subprocess.run([tool, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60)
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in rules.stdout
    # The config names the rules by their path in the container: checked with a copy pointing at ours.
    config = load_yaml(PROMETHEUS)
    config["rule_files"] = [str(ALERTS)]
    with tempfile.NamedTemporaryFile("w", suffix=".yml") as copy:
        yaml.safe_dump(config, copy)
        copy.flush()
        checked = subprocess.run([tool, "check", "config", copy.name], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_promtool_refuses_a_broken_rule(tmp_path) -> None:
    broken = tmp_path / "alerts.yml"
    broken.write_text(ALERTS.read_text(encoding="utf-8").replace("> 120", "> > 120", 1), encoding="utf-8")
    assert broken.read_text(encoding="utf-8") != ALERTS.read_text(encoding="utf-8")
    refused = subprocess.run([promtool(), "check", "rules", str(broken)], capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0


# ---- wiring ------------------------------------------------------------------------------------------------------
def test_prometheus_loads_the_rules_and_scrapes_every_api_and_worker() -> None:
    config = load_yaml(PROMETHEUS)
    assert any(Path(f).name == ALERTS.name for f in config["rule_files"])
    targets = {job["job_name"]: [t for sc in job["static_configs"] for t in sc["targets"]]
               for job in config["scrape_configs"]}
    services = load_yaml(COMPOSE)["services"]
    for name, service in services.items():
        command = service.get("command") or []
        if command[:1] == ["api"]:
            # /metrics on its own port, off the public one
            port = service["environment"]["GATEWAY_METRICS_PORT"]
            assert port != "8080" and f"{name}:{port}" in targets["gateway-api"], f"{name} is not scraped"
        if command[:1] == ["worker"]:
            port = command[command.index("--metrics-port") + 1]
            host = service["network_mode"].removeprefix("service:") if "network_mode" in service else name
            assert f"{host}:{port}" in targets["gateway-worker"], f"{name} is not scraped"


def test_compose_runs_what_was_asked() -> None:
    services = load_yaml(COMPOSE)["services"]
    commands = [service.get("command") or [] for service in services.values()]
    assert sum(1 for c in commands if c[:1] == ["api"]) == 2
    workers = [c for c in commands if c[:1] == ["worker"]]
    assert len(workers) == 2 and all("--metrics-port" in c for c in workers)
    assert ["mocks"] in commands
    assert {"redis", "prometheus", "grafana"} <= set(services)
    redis_command = " ".join(services["redis"]["command"])
    assert "--appendonly yes" in redis_command and "--appendfsync everysec" in redis_command
    assert services["redis"]["image"].startswith("redis:7")


def test_compose_environment_matches_the_settings() -> None:
    services = load_yaml(COMPOSE)["services"]
    fields = set(Settings.model_fields)
    for name, service in services.items():
        for variable, value in (service.get("environment") or {}).items():
            if not variable.startswith("GATEWAY_") or variable in NON_SETTINGS_ENV:
                continue
            field, _, nested = variable.removeprefix("GATEWAY_").lower().partition("__")
            assert field in fields, f"{name}: {variable} is no setting"
            if field == "adapters":
                adapter, _, option = nested.partition("__")
                assert adapter in DEFAULT_MOCK_PORTS, f"{name}: {variable} names no known adapter"
                if option == "base_url" and "mocks" in services:
                    assert str(value).endswith(f":{DEFAULT_MOCK_PORTS[adapter]}"), f"{name}: {variable}"
            if field == "mock_ports":
                assert json.loads(str(value)) == DEFAULT_MOCK_PORTS


def test_compose_mounts_files_that_exist() -> None:
    for name, service in load_yaml(COMPOSE)["services"].items():
        for volume in service.get("volumes") or []:
            source = str(volume).split(":", 1)[0]
            if source.startswith("./"):
                assert (DEPLOY / source).exists(), f"{name}: {source} does not exist"


def test_grafana_provisioning_matches_the_dashboard() -> None:
    datasources = load_yaml(PROVISIONING / "datasources" / "prometheus.yaml")["datasources"]
    assert any(ds["type"] == "prometheus" for ds in datasources)
    providers = load_yaml(PROVISIONING / "dashboards" / "gateway.yaml")["providers"]
    grafana = load_yaml(COMPOSE)["services"]["grafana"]
    mounted = [str(v).split(":")[1] for v in grafana["volumes"] if str(v).startswith("./grafana/dashboard.json")]
    assert mounted and all(Path(m).parent == Path(providers[0]["options"]["path"]) for m in mounted)


# ---- image -------------------------------------------------------------------------------------------------------
def test_dockerfile_is_multi_stage_non_root_with_a_healthcheck() -> None:
    instructions = dockerfile_instructions()
    froms = [args for keyword, args in instructions if keyword == "FROM"]
    assert len(froms) >= 2 and any(" AS builder" in f for f in froms)
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    final = instructions[last_from:]
    users = [args for keyword, args in final if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    healthchecks = [args for keyword, args in final if keyword == "HEALTHCHECK"]
    assert healthchecks
    command = json.loads(healthchecks[-1].split("CMD", 1)[1])
    assert command[:2] == ["python", "-c"] and "/healthz" in command[2]
    compile(command[2], "HEALTHCHECK", "exec")
    assert ("ENTRYPOINT", '["gateway"]') in final and ("CMD", '["api"]') in final
    assert ("EXPOSE", "8080") in final


def test_image_points_the_settings_at_the_copied_profiles() -> None:
    final = dockerfile_instructions()
    final = final[max(i for i, (keyword, _) in enumerate(final) if keyword == "FROM"):]
    copied = [args.split()[-1].rstrip("/") for keyword, args in final
              if keyword == "COPY" and args.split()[0].rstrip("/") == "profiles"]
    env = " ".join(args for keyword, args in final if keyword == "ENV")
    match = re.search(r"GATEWAY_PROFILES_DIR=(\S+)", env)
    assert copied and match and match.group(1).rstrip("/") == copied[0]


def test_dockerignore_keeps_what_the_image_copies() -> None:
    ignored = {line.strip().rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    for keyword, args in dockerfile_instructions():
        if keyword == "COPY" and not args.startswith("--from"):
            for source in args.split()[:-1]:
                assert source.rstrip("/") not in ignored, f"{source} is copied but .dockerignore drops it"
                assert (ROOT / source).exists(), f"{source} does not exist"
