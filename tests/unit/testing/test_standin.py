"""The HAL9 stand-in's behaviour without a cluster: knobs, answers, and the server with its metrics.

Tests of the migration read these answers and metrics as HAL9's; if a knob did not do exactly what it
says, a gate test would pass or fail for the wrong reason.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from hal9_migration.testing import standin
from hal9_migration.testing.loadgen import LoadGenerator
from hal9_migration.testing.standin import ErrorSchedule, KnobError, Knobs, answer, request_key
from tests.support.traffic import http


def test_knobs_default_to_zero_and_read_every_variable() -> None:
    assert Knobs.from_env({}) == Knobs()
    env = {
        "HAL9_ERROR_RATE": "0.25",
        "HAL9_ADDED_LATENCY_MS": "40",
        "HAL9_LATENCY_JITTER_MS": " 5 ",
        "HAL9_DIVERGENCE": "0.1",
        "HAL9_CONFIDENCE_SHIFT": "-0.2",
    }
    assert Knobs.from_env(env) == Knobs(0.25, 40.0, 5.0, 0.1, -0.2)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("HAL9_ERROR_RATE", "1.5"),
        ("HAL9_ERROR_RATE", "30%"),
        ("HAL9_ERROR_RATE", "nan"),
        ("HAL9_ADDED_LATENCY_MS", "-1"),
        ("HAL9_LATENCY_JITTER_MS", "fast"),
        ("HAL9_DIVERGENCE", "-0.1"),
        ("HAL9_CONFIDENCE_SHIFT", "2"),
    ],
)
def test_a_bad_knob_is_refused_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(KnobError, match=f"{name}='{value}'"):
        Knobs.from_env({name: value})


def test_every_bad_knob_is_named_at_once() -> None:
    with pytest.raises(KnobError) as caught:
        Knobs.from_env({"HAL9_ERROR_RATE": "2", "HAL9_DIVERGENCE": "x"})
    assert "HAL9_ERROR_RATE" in str(caught.value)
    assert "HAL9_DIVERGENCE" in str(caught.value)


def test_a_bad_knob_stops_the_server_before_it_listens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HAL9_ERROR_RATE", "1.5")
    assert standin.main(["--system", "flat", "--port", "0"]) == 2


def test_flat_and_hierarchical_answer_the_same_output_for_the_same_request() -> None:
    key = request_key(b'{"input": "what is 2+2", "user": "ada"}')
    flat, hierarchical = answer("flat", key, Knobs()), answer("hierarchical", key, Knobs())
    assert flat["output"] == hierarchical["output"]
    assert flat["confidence"] == hierarchical["confidence"]
    assert (flat["system"], hierarchical["system"]) == ("flat", "hierarchical")
    assert answer("flat", request_key(b'{"input": "something else"}'), Knobs())["output"] != flat["output"]


def test_a_request_is_the_same_whatever_its_json_spacing_or_key_order_or_verb() -> None:
    assert request_key(b'{"input":"x","user":"u"}') == request_key(b'{ "user": "u", "input": "x" }')
    assert request_key(b"", "input=x&user=u") == request_key(b'{"input": "x", "user": "u"}')
    assert request_key(b"not json") == b"not json"


def test_divergence_changes_that_fraction_of_requests_and_always_the_same_ones() -> None:
    knobs = Knobs(divergence=0.2)
    keys = [request_key(json.dumps({"input": f"q{i}"}).encode()) for i in range(10_000)]
    diverged = [
        k for k in keys if answer("hierarchical", k, knobs)["output"] != answer("flat", k, Knobs())["output"]
    ]
    assert 1_850 <= len(diverged) <= 2_150  # 0.2 of 10,000; the hash is fixed, so this never flakes
    assert all(
        answer("hierarchical", k, knobs)["output"] != answer("flat", k, Knobs())["output"] for k in diverged
    )


def test_confidence_shift_moves_confidence_and_stays_within_zero_and_one() -> None:
    key = request_key(b'{"input": "x"}')
    base = answer("flat", key, Knobs())["confidence"]
    assert answer("flat", key, Knobs(confidence_shift=-0.3))["confidence"] == pytest.approx(
        base - 0.3, abs=1e-4
    )
    assert answer("flat", key, Knobs(confidence_shift=1.0))["confidence"] == 1.0
    assert answer("flat", key, Knobs(confidence_shift=-1.0))["confidence"] == 0.0


@pytest.mark.parametrize("rate", [0.0, 0.001, 0.05, 0.3, 1 / 3, 1.0])
def test_the_error_rate_is_exact_over_any_run_of_requests(rate: float) -> None:
    schedule = ErrorSchedule(rate)
    fails = [schedule.next_fails() for _ in range(3_000)]
    for start, length in ((0, 3_000), (0, 1_000), (1_234, 500), (2_000, 1_000)):
        assert abs(sum(fails[start : start + length]) - rate * length) <= 1


class Running:
    def __init__(self, server: standin.StandIn) -> None:
        self.server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}"

    def metrics(self) -> dict[str, float]:
        status, body = http(self.url + "/metrics")
        assert status == 200
        text = body.decode()
        return {
            sample.name + json.dumps(sample.labels, sort_keys=True): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }


@pytest.fixture
def failing_hierarchical() -> Iterator[Running]:
    server = standin.StandIn(("127.0.0.1", 0), "hierarchical", Knobs(error_rate=0.25))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield Running(server)
    server.shutdown()
    server.server_close()


def test_the_server_answers_counts_and_exports_what_it_did(failing_hierarchical: Running) -> None:
    result = LoadGenerator(failing_hierarchical.url + "/process", rate=2_000, count=400, concurrency=4).run()
    assert result.statuses == {200: 300, 500: 100}
    assert result.systems == {"hierarchical": 400}
    assert not result.failures
    metrics = failing_hierarchical.metrics()
    label = json.dumps({"system": "hierarchical"})
    assert metrics["hal9_requests_total" + label] == 400
    assert metrics["hal9_errors_total" + label] == 100
    assert metrics["hal9_request_duration_seconds_count" + label] == 400
    assert any(name.startswith("process_cpu_seconds_total") for name in metrics)


def test_health_metrics_and_unknown_paths_are_not_counted_as_requests(failing_hierarchical: Running) -> None:
    assert http(failing_hierarchical.url + "/healthz") == (200, b"ok\n")
    assert http(failing_hierarchical.url + "/nothing")[0] == 404
    assert failing_hierarchical.metrics()["hal9_requests_total" + json.dumps({"system": "hierarchical"})] == 0


def test_added_latency_shows_in_the_duration_histogram() -> None:
    server = standin.StandIn(("127.0.0.1", 0), "flat", Knobs(added_latency_ms=30))
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        running = Running(server)
        LoadGenerator(running.url, rate=100, count=20, concurrency=4).run()
        metrics = running.metrics()
    finally:
        server.shutdown()
        server.server_close()
    bucket = "hal9_request_duration_seconds_bucket"
    assert metrics[bucket + json.dumps({"le": "0.02", "system": "flat"}, sort_keys=True)] == 0
    assert metrics[bucket + json.dumps({"le": "+Inf", "system": "flat"}, sort_keys=True)] == 20
