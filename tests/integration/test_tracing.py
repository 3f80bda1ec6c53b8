"""One case, one trace: from the platform's POST /v1/cases through the stream step, the department call (whose
server logs the traceparent it received), the department's callback and the outbox, in a gateway process with
OTEL_TRACES_EXPORTER=console."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from gateway.store import keys
from tests.support.harness import sync_redis

ROOT = Path(__file__).resolve().parents[2]


def printed_objects(text: str) -> list[dict[str, Any]]:
    """Every JSON object printed on stdout (spans, pretty-printed, between log lines)."""
    decoder, found, at = json.JSONDecoder(), [], 0
    while (start := text.find("{", at)) >= 0:
        try:
            value, at = decoder.raw_decode(text, start)
        except ValueError:
            at = start + 1
            continue
        if isinstance(value, dict):
            found.append(value)
    return found


def trace_of(span: dict[str, Any]) -> str:
    return str(span["context"]["trace_id"]).removeprefix("0x")


def test_one_trace_from_the_platform_request_to_the_department_and_back(redis_url, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env |= {"OTEL_TRACES_EXPORTER": "console", "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-m", "tests.support.traced_case", redis_url, str(tmp_path / "gw")],
                         env=env, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr[-3000:]
    printed, _, last = run.stdout.rpartition("RESULT ")
    result = json.loads(last)
    case_id = result["case_id"]
    assert result["status"] == "completed"
    spans = [o for o in printed_objects(printed) if "context" in o and "kind" in o]

    api = [s for s in spans if s["name"] == "POST /v1/cases" and s["kind"] == "SpanKind.SERVER"]
    assert len(api) == 1 and api[0]["attributes"]["http.response.status_code"] == 202
    trace_id = trace_of(api[0])
    in_trace = [s for s in spans if trace_of(s) == trace_id]
    names = {s["name"] for s in in_trace}

    # The worker's steps continue the request's trace through the stream entry (traceparent field).
    steps = [s for s in spans if s["kind"] == "SpanKind.CONSUMER" and s["attributes"].get("gateway.case_id") == case_id]
    assert {s["attributes"]["gateway.step"] for s in steps} >= {"submit"}
    assert all(trace_of(s) == trace_id for s in steps)
    submit = next(s for s in steps if s["attributes"]["gateway.step"] == "submit")
    assert submit["attributes"]["messaging.destination.name"] == keys.task_stream(keys.shard_of(case_id))
    # Its parent is the step that queued it (the documents step), not merely the case: the entry carried it.
    documents = next(s for s in steps if s["attributes"]["gateway.step"] == "documents")
    assert submit["parent_id"] == documents["context"]["span_id"]
    assert documents["parent_id"] == api[0]["context"]["span_id"]
    # The department call is a client span in it, and the department received its traceparent.
    calls = [s for s in in_trace if s["name"] == "POST hrss" and s["kind"] == "SpanKind.CLIENT"]
    assert calls
    received = re.findall(r"mocks\.hrss request POST \S+ traceparent=00-([0-9a-f]{32})-([0-9a-f]{16})-", run.stderr)
    assert received and {t for t, _ in received} == {trace_id}
    assert {span_id for _, span_id in received} <= {s["context"]["span_id"].removeprefix("0x") for s in calls}
    # The callback came in on a request of its own and was applied in the case's trace, linked to that request.
    callback_requests = [s for s in spans if s["name"] == "POST /v1/callbacks/{adapter_name}"]
    applied = [s for s in in_trace if s["name"] == "callback hrss"]
    assert callback_requests and applied
    linked = {trace_of(link) for s in applied for link in s["links"]}
    assert linked and linked <= {trace_of(s) for s in callback_requests}
    # The log line of the callback carries the case, the matter, the request id (a callback's X-Request-Id is the
    # department request id it answers) and the trace.
    logged = [o for o in printed_objects(printed) if o.get("event") == "callback"]
    assert logged and logged[0]["case_id"] == case_id and logged[0]["matter"] == "archive_transfer"
    assert logged[0]["trace_id"] == trace_id and re.fullmatch(r"GW[0-9A-F]{30}", logged[0]["request_id"])
    # Outbox deliveries and Redis calls belong to it too.
    assert "outbox deliver" in names and "EVALSHA" in names

    # Every change on the case's audit chain points into the trace.
    client = sync_redis(redis_url)
    chain = [json.loads(raw) for raw in client.lrange(keys.audit(case_id), 0, -1)]
    client.close()
    assert len(chain) >= 4 and {entry.get("trace_id") for entry in chain} == {trace_id}
    # ...and the operator finds it in the case's history.
    shown = subprocess.run([str(Path(sys.executable).parent / "gateway"), "cases", "show", case_id],
                           env={k: v for k, v in env.items() if not k.startswith(("OTEL_", "GATEWAY_"))}
                           | {"GATEWAY_REDIS_URL": redis_url, "GATEWAY_VAR_DIR": str(tmp_path / "gw" / "var")},
                           capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0 and shown.stdout.count(trace_id) == len(chain), shown.stdout + shown.stderr

    # No personal data in any span (attributes, names, events), whatever its encoding.
    person = result["applicant"]
    for value in (person["id_number"], person["name"], person["phone"]):
        assert value not in printed and json.dumps(value).strip('"') not in printed
