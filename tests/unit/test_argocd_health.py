"""The Argo CD health check (charts/.../files/argocd-health.lua) on statuses captured from real runs.

Argo CD cannot be built here, so its Lua is run the way Argo CD runs it: Lua 5.1 (Argo CD embeds
gopher-lua, a Lua 5.1) with only the base, table and package libraries, no string library (not even
as the strings' metatable), the object as the global ``obj``, and the returned table checked for one
of Argo CD's health codes. The inputs in tests/data/argocd/ were written by
tests/integration/test_argocd_health.py (``HAL9_CAPTURE_ARGOCD=1``) from the real operator's objects.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import lupa.lua51 as lua51  # type: ignore[import-untyped]
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "charts" / "hal9-migration-operator" / "files" / "argocd-health.lua"
FIXTURES = ROOT / "tests" / "data" / "argocd"
# gitops-engine's health codes: anything else Argo CD turns into Unknown ("invalid health status").
HEALTH_CODES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}


def health(obj: dict[str, Any]) -> tuple[str, str]:
    """(status, message) as Argo CD would compute them for ``obj``."""
    runtime = lua51.LuaRuntime(unpack_returned_tuples=False)
    # Argo CD opens base, table and package (and a safe os) only: drop what lupa opens besides, and
    # the string metatable, so a call like s:find() fails here as it would in Argo CD.
    runtime.execute("debug.setmetatable('', nil)")
    for library in ("string", "math", "io", "os", "debug", "coroutine"):
        runtime.globals()[library] = None
    runtime.globals().obj = runtime.table_from(obj, recursive=True)
    result = runtime.execute(SCRIPT.read_text())
    assert lua51.lua_type(result) == "table", f"the script returned {result!r}, not a table"
    status, message = result["status"], result["message"]
    assert status in HEALTH_CODES, status
    assert isinstance(message, str) and message, "Argo CD shows the message: it must say something"
    return str(status), message


def load(name: str) -> dict[str, Any]:
    return dict(yaml.safe_load((FIXTURES / f"{name}.yaml").read_text()))


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == type_)


def test_every_captured_outcome_is_here() -> None:
    assert sorted(p.stem for p in FIXTURES.glob("*.yaml")) == sorted(EXPECTED)


# fixture -> (health, the condition whose message the health message carries and its reason)
EXPECTED: dict[str, tuple[str, tuple[str, str] | None]] = {
    "missing-status": ("Progressing", ("Reconciling", "AwaitingOperator")),
    "progressing": ("Progressing", ("Reconciling", "WaitingForStep")),
    "generation-behind": ("Progressing", None),  # no condition speaks for the new generation yet
    "suspended": ("Suspended", ("Ready", "Paused")),
    "healthy": ("Healthy", ("Ready", "TargetReached")),
    "degraded-stalled": ("Degraded", ("Stalled", "ReferenceNotFound")),
    "degraded-rolled-back": ("Degraded", ("Stalled", "RolledBack")),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_captured_status(name: str) -> None:
    obj = load(name)
    want, source = EXPECTED[name]
    status, message = health(obj)
    assert status == want
    if source is None:
        return
    type_, reason = source
    found = condition(obj, type_)
    assert found["reason"] == reason
    # The message says what the condition says, and names its reason, so a person sees why (the
    # placeholder's reason means nothing to a person: its message alone is shown).
    assert found["message"] in message
    assert reason in message or reason == "AwaitingOperator"


def test_a_migration_no_operator_has_seen_waits_for_the_operator() -> None:
    status, message = health(load("missing-status"))
    assert (status, message) == (
        "Progressing",
        "Waiting for the operator: No operator has observed this migration yet",
    )


def test_an_object_without_any_status_is_progressing_not_healthy() -> None:
    # A CRD installed without the status default (an older chart) leaves status out entirely; Argo
    # CD must not call that Healthy either.
    obj = load("missing-status")
    del obj["status"]
    assert health(obj) == ("Progressing", "Waiting for the operator: this migration has no status yet")


def test_a_spec_the_operator_has_not_seen_is_progressing_even_if_ready_before() -> None:
    obj = load("generation-behind")
    assert condition(obj, "Ready")["status"] == "True"  # from the previous generation
    generation, observed = obj["metadata"]["generation"], obj["status"]["observedGeneration"]
    assert observed < generation
    assert health(obj) == (
        "Progressing",
        f"Waiting for the operator to observe generation {generation} (it has seen {observed})",
    )


def test_numbers_as_strings_read_the_same() -> None:
    # Argo CD hands json.Number values to Lua as strings; tonumber makes them compare as numbers.
    for name in EXPECTED:
        obj = load(name)
        as_strings = copy.deepcopy(obj)
        as_strings["metadata"]["generation"] = str(obj["metadata"]["generation"])
        if "observedGeneration" in obj.get("status", {}):
            as_strings["status"]["observedGeneration"] = str(obj["status"]["observedGeneration"])
        assert health(as_strings) == health(obj), name


def test_a_paused_migration_says_who_paused_it_and_where_it_holds() -> None:
    obj = load("suspended")
    assert condition(obj, "Paused")["reason"] == "PausedByAnnotation"
    assert health(obj) == ("Suspended", "PausedByAnnotation: " + condition(obj, "Ready")["message"])


def test_the_healthy_message_is_the_ready_condition() -> None:
    obj = load("healthy")
    ready = condition(obj, "Ready")
    assert health(obj) == ("Healthy", f"{ready['reason']}: {ready['message']}")


def test_a_rolled_back_migration_says_it_was_rolled_back() -> None:
    obj = load("degraded-rolled-back")
    assert obj["status"]["rollback"]["reason"]
    assert condition(obj, "Degraded")["reason"] == "RolledBack"
    status, message = health(obj)
    assert status == "Degraded" and message.startswith("Stalled: RolledBack: ")
