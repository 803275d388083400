"""The divergence samples: bounded, newest first, and redacted before anything is kept."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hal9_migration.shadow.compare import parse_path
from hal9_migration.shadow.samples import REDACTED, DivergenceSamples, Exchange, Redaction


def record(samples: DivergenceSamples, n: int = 0, **overrides: Any) -> None:
    fields: dict[str, Any] = {
        "method": b"POST",
        "target": f"/process?n={n}".encode(),
        "request_headers": [(b"Host", b"proxy"), (b"Content-Type", b"application/json")],
        "request_body": json.dumps({"input": f"request-{n}"}).encode(),
        "primary": Exchange(200, b'{"output": "a"}'),
        "shadow": Exchange(200, b'{"output": "b"}'),
        "kind": "output",
        "score": 1.0,
        "at": 1000.0 + n,
    }
    fields.update(overrides)
    samples.record(**fields)


def test_the_ring_keeps_the_last_n_newest_first() -> None:
    samples = DivergenceSamples(3, Redaction())
    for n in range(5):
        record(samples, n)
    served = samples.newest_first()
    assert [sample["request"]["path"] for sample in served] == [
        "/process?n=4",
        "/process?n=3",
        "/process?n=2",
    ]
    assert [sample["time"] for sample in served] == [1004.0, 1003.0, 1002.0]
    assert (len(samples), samples.capacity, samples.recorded) == (3, 3, 5)


def test_a_zero_capacity_ring_keeps_nothing_but_counts() -> None:
    samples = DivergenceSamples(0, Redaction())
    record(samples)
    assert (samples.newest_first(), samples.recorded) == ([], 1)


def test_a_sample_holds_both_sides() -> None:
    samples = DivergenceSamples(5, Redaction())
    record(samples, 7, kind="confidence", score=0.5)
    (sample,) = samples.newest_first()
    assert sample == {
        "time": 1007.0,
        "kind": "confidence",
        "score": 0.5,
        "request": {
            "method": "POST",
            "path": "/process?n=7",
            "headers": [["Host", "proxy"], ["Content-Type", "application/json"]],
            "body": {"text": '{"input":"request-7"}', "truncated": False},
        },
        "primary": {"status": 200, "failure": None, "body": {"text": '{"output":"a"}', "truncated": False}},
        "shadow": {"status": 200, "failure": None, "body": {"text": '{"output":"b"}', "truncated": False}},
    }
    json.dumps(sample)  # served as JSON as it is


def test_a_failed_shadow_is_shown_as_its_failure() -> None:
    samples = DivergenceSamples(5, Redaction())
    record(samples, shadow=Exchange(None, b"", "timeout"), kind="timeout")
    (sample,) = samples.newest_first()
    assert sample["shadow"] == {"status": None, "failure": "timeout", "body": None}


def test_credential_headers_are_redacted_by_default_in_any_case() -> None:
    samples = DivergenceSamples(5, Redaction.with_extra([], []))
    headers = [
        (b"Authorization", b"Bearer secret-token"),
        (b"proxy-authorization", b"Basic c2VjcmV0"),
        (b"COOKIE", b"session=secret"),
        (b"Set-Cookie", b"a=secret"),
        (b"X-Request-Id", b"r-1"),
    ]
    record(samples, request_headers=headers)
    shown = samples.newest_first()[0]["request"]["headers"]
    assert shown == [
        ["Authorization", REDACTED],
        ["proxy-authorization", REDACTED],
        ["COOKIE", REDACTED],
        ["Set-Cookie", REDACTED],
        ["X-Request-Id", "r-1"],
    ]
    assert "secret" not in json.dumps(samples.newest_first())


def test_configured_headers_are_redacted_too() -> None:
    samples = DivergenceSamples(5, Redaction.with_extra(["X-Api-Key", " x-tenant "], []))
    record(samples, request_headers=[(b"x-api-key", b"k-123"), (b"X-Tenant", b"acme"), (b"Accept", b"*/*")])
    shown = samples.newest_first()[0]["request"]["headers"]
    assert shown == [["x-api-key", REDACTED], ["X-Tenant", REDACTED], ["Accept", "*/*"]]


def test_configured_fields_are_redacted_in_every_body_nested_and_through_lists() -> None:
    redaction = Redaction.with_extra(
        [], [parse_path("user.email"), parse_path("items.token"), parse_path("ssn")]
    )
    samples = DivergenceSamples(5, redaction)
    request = {
        "user": {"email": "a@example.com", "name": "Ann"},
        "items": [{"token": "t1"}, {"token": "t2", "n": 1}],
    }
    record(
        samples,
        request_body=json.dumps(request).encode(),
        primary=Exchange(200, b'{"output": "a", "ssn": "123-45-6789"}'),
        shadow=Exchange(200, b'{"output": "b", "user": {"email": "b@example.com"}}'),
    )
    (sample,) = samples.newest_first()
    assert json.loads(sample["request"]["body"]["text"]) == {
        "user": {"email": REDACTED, "name": "Ann"},
        "items": [{"token": REDACTED}, {"token": REDACTED, "n": 1}],
    }
    assert json.loads(sample["primary"]["body"]["text"]) == {"output": "a", "ssn": REDACTED}
    assert json.loads(sample["shadow"]["body"]["text"]) == {"output": "b", "user": {"email": REDACTED}}
    text = json.dumps(sample)
    for secret in ("a@example.com", "b@example.com", "t1", "t2", "123-45-6789"):
        assert secret not in text


def test_missing_redacted_fields_are_not_added() -> None:
    samples = DivergenceSamples(5, Redaction.with_extra([], [parse_path("user.email")]))
    record(samples, primary=Exchange(200, b'{"user": "not an object"}'), shadow=Exchange(200, b"[1, 2]"))
    (sample,) = samples.newest_first()
    assert json.loads(sample["primary"]["body"]["text"]) == {"user": "not an object"}
    assert json.loads(sample["shadow"]["body"]["text"]) == [1, 2]


def test_bodies_are_truncated_after_redaction() -> None:
    samples = DivergenceSamples(5, Redaction.with_extra([], [parse_path("secret")], body_limit=64))
    big = json.dumps({"secret": "s" * 1000, "data": "d" * 1000}).encode()
    record(
        samples, request_body=big, primary=Exchange(200, b"x" * 64), shadow=Exchange(200, "é".encode() * 40)
    )
    (sample,) = samples.newest_first()
    request_body = sample["request"]["body"]
    assert request_body["truncated"] is True
    assert request_body["text"] == ('{"secret":"<redacted>","data":"' + "d" * 64)[:64]
    assert sample["primary"]["body"] == {"text": "x" * 64, "truncated": False}  # exactly at the bound
    shadow_body = sample["shadow"]["body"]
    assert shadow_body["truncated"] is True
    assert shadow_body["text"] == "é" * 32  # cut on a character boundary: 64 bytes of 2-byte characters
    assert "s" * 10 not in json.dumps(sample)


def test_non_json_bodies_are_kept_as_text() -> None:
    samples = DivergenceSamples(5, Redaction.with_extra([], [parse_path("secret")]))
    record(samples, primary=Exchange(200, b"plain \xff text"), shadow=Exchange(502, b""))
    (sample,) = samples.newest_first()
    assert sample["primary"]["body"] == {"text": "plain \ufffd text", "truncated": False}
    assert sample["shadow"] == {"status": 502, "failure": None, "body": {"text": "", "truncated": False}}


def test_a_negative_capacity_is_refused() -> None:
    with pytest.raises(ValueError, match="capacity"):
        DivergenceSamples(-1, Redaction())
