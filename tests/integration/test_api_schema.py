"""schemathesis against a real daemon's OpenAPI schema: no 5xx, and every answer as documented.

schemathesis runs as a library (its engine, the same one ``st run`` drives), not through its pytest
plugin: the test is a plain synchronous function, so trio_mode leaves it alone. Every operation is
tested with the bearer token; the examples per operation are bounded so the whole run stays short.
A failure lists each distinct problem once, with the curl command that reproduces it.
"""

from __future__ import annotations

import pytest
import schemathesis
from schemathesis.engine import Status, events, from_schema

from tests.integration.harness import Daemon

pytestmark = pytest.mark.integration

CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_schema_conformance")
MAX_EXAMPLES = 50  # per operation and phase; the whole test takes ~10 s


def _config(token: str) -> schemathesis.Config:
    return schemathesis.Config.from_dict({
        "seed": 7,  # no "max-time": with one, schemathesis keeps fuzzing until the time is up
        "cache": {"enabled": False},  # no .schemathesis/ directory in the tree
        "headers": {"Authorization": f"Bearer {token}"},
        "request-timeout": 15,
        "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
        "generation": {"max-examples": MAX_EXAMPLES},
        "phases": {"stateful": {"enabled": False}},  # the schema declares no links between operations
        # The event stream never ends: schemathesis reads each answer until the request timeout.
        "operations": [{"include-name": "GET /api/v1/events", "request-timeout": 1,
                        "generation": {"max-examples": 5}}],
    })


@pytest.mark.timeout(180)
def test_schema_conformance(daemon: Daemon) -> None:
    schema = schemathesis.openapi.from_url(daemon.base + "/api/v1/schema/openapi.json", config=_config(daemon.token))
    operations = {result.ok().label for result in schema.get_all_operations()}
    assert {"POST /api/v1/login", "POST /api/v1/logout", "GET /api/v1/health"} <= operations

    problems: dict[tuple[str, str, str], str] = {}
    errors: list[str] = []
    tested: set[str] = set()
    stop_reason = None
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            recorder = event.recorder
            if recorder.cases:
                tested.add(recorder.label)
            for checks in recorder.checks.values():
                for check in checks:
                    if check.status == Status.FAILURE and check.failure_info is not None:
                        failure = check.failure_info.failure
                        key = (recorder.label, check.name, failure.title)
                        detail = f"{failure.message.strip()[:400]}\n    {check.failure_info.code_sample}"
                        problems.setdefault(key, detail)
        elif isinstance(event, events.NonFatalError):
            errors.append(f"{event.label}: {event.info.title}: {event.info.message}")
        elif isinstance(event, events.FatalError):
            raise event.exception
        elif isinstance(event, events.EngineFinished):
            stop_reason = event.stop_reason

    report = "\n".join(f"{label} [{check}] {title}\n    {detail}" for (label, check, title), detail in problems.items())
    assert not errors, "\n".join(errors)
    assert not problems, f"{len(problems)} schemathesis finding(s):\n{report}\n{daemon.log_tail(20)}"
    assert stop_reason == "completed", f"schemathesis stopped early: {stop_reason}"
    assert tested == operations, f"never exercised: {sorted(operations - tested)}"
