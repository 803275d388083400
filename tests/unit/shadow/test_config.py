"""The shadow-proxy command line: the operator writes it into a pod, so each mistake must stop the
proxy with one clear line (exit 2), and the defaults must be the documented ones."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from hal9_migration.shadow.compare import CompareRules
from hal9_migration.shadow.config import (
    ConfigError,
    ProxyConfig,
    UpstreamAddress,
    add_arguments,
    from_arguments,
    parse_address,
    parse_upstream,
)
from hal9_migration.shadow.samples import DEFAULT_REDACTED_HEADERS
from tests.support.manifests import ROOT

ALL_INTERFACES = "0.0.0.0"  # noqa: S104 - the documented default, not a binding


def config_of(*args: str) -> ProxyConfig:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return from_arguments(parser.parse_args(list(args)))


def test_defaults() -> None:
    config = config_of(
        "--flat", "http://hal9-flat:8090", "--hierarchical", "http://hal9-hierarchical:8090/v1/"
    )
    assert config.flat == UpstreamAddress("hal9-flat", 8090, "")
    assert config.hierarchical == UpstreamAddress("hal9-hierarchical", 8090, "/v1")
    assert (config.listen, config.admin, config.migration) == (
        (ALL_INTERFACES, 8080),
        (ALL_INTERFACES, 9090),
        "",
    )
    assert config.rules == CompareRules((), ("confidence",), 0.1)
    assert config.redaction.headers == DEFAULT_REDACTED_HEADERS
    assert config.redaction.fields == ()
    assert config.shadow_percent == 100
    assert (config.shadow_timeout, config.primary_timeout, config.max_in_flight, config.samples) == (
        1.0,
        30.0,
        256,
        100,
    )


def test_every_option() -> None:
    config = config_of(
        "--flat=http://10.0.0.1",
        "--hierarchical=http://[::1]:81",
        "--listen=[::]:18080",
        "--admin=127.0.0.1:0",
        "--migration=m1",
        "--ignore-field=timestamp",
        "--ignore-field=meta.requestId",
        "--confidence-field=scores.confidence",
        "--confidence-tolerance=0.05",
        "--redact-header=X-Api-Key",
        "--redact-field=user.email",
        "--shadow-timeout=0.25",
        "--primary-timeout=5",
        "--max-in-flight=8",
        "--samples=0",
        "--shadow-percent=12.5",
    )
    assert config.flat == UpstreamAddress("10.0.0.1", 80, "")
    assert config.flat.authority == "10.0.0.1"
    assert config.hierarchical.authority == "[::1]:81"
    assert (config.listen, config.admin, config.migration) == (("::", 18080), ("127.0.0.1", 0), "m1")
    assert config.rules == CompareRules(
        (("timestamp",), ("meta", "requestId")), ("scores", "confidence"), 0.05
    )
    assert config.redaction.headers == DEFAULT_REDACTED_HEADERS | {"x-api-key"}
    assert config.redaction.fields == (("user", "email"),)
    assert config.shadow_percent == 12.5
    assert (config.shadow_timeout, config.primary_timeout, config.max_in_flight, config.samples) == (
        0.25,
        5.0,
        8,
        0,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "--flat URL is required"),
        (["--flat=http://a:1"], "--hierarchical URL is required"),
        (["--flat=https://a:1", "--hierarchical=http://b:1"], "must be an http:// URL"),
        (["--flat=a:1", "--hierarchical=http://b:1"], "must be an http:// URL"),
        (["--flat=http://a:99999", "--hierarchical=http://b:1"], "--flat 'http://a:99999'"),
        (["--flat=http://:80", "--hierarchical=http://b:1"], "no host"),
        (["--flat=http://a:1/?x=1", "--hierarchical=http://b:1"], "no query"),
        (["--listen=8080"], "--listen '8080': must be HOST:PORT"),
        (["--admin=0.0.0.0:x"], "--admin 'x': must be an integer"),
        (["--admin=0.0.0.0:70000"], "port must be at most 65535"),
        (["--ignore-field=a..b"], "--ignore-field: 'a..b' is not a dotted field path"),
        (["--confidence-field="], "--confidence-field: '' is not a dotted field path"),
        (["--confidence-tolerance=-0.1"], "must be a number >= 0"),
        (["--confidence-tolerance=nan"], "must be a number >= 0"),
        (["--shadow-timeout=0"], "--shadow-timeout '0': must be a number > 0"),
        (["--primary-timeout=soon"], "--primary-timeout 'soon': must be a number > 0"),
        (["--max-in-flight=-1"], "--max-in-flight '-1': must be an integer >= 0"),
        (["--samples=1.5"], "--samples '1.5': must be an integer >= 0"),
        (["--redact-header=X Key"], "not a header name"),
        (["--redact-field=.a"], "--redact-field"),
        (["--shadow-percent=101"], "--shadow-percent '101': must be a number in [0, 100]"),
        (["--shadow-percent=-5"], "--shadow-percent '-5': must be a number >= 0"),
    ],
)
def test_bad_arguments_are_refused_with_a_message(args: list[str], message: str) -> None:
    base = ["--flat=http://a:1", "--hierarchical=http://b:1"] if args and "--flat" not in args[0] else []
    with pytest.raises(ConfigError) as raised:
        config_of(*base, *args)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_the_command_exits_2_with_one_line() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "hal9_migration.cli",
            "shadow-proxy",
            "--flat",
            "http://a:1",
            "--hierarchical",
            "ftp://b",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT / "operator")},
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "hal9-migration shadow-proxy: error: --hierarchical 'ftp://b': must be an http:// URL"
        " (https is not supported)"
    ]
    assert result.stdout == ""


def test_helpers_directly() -> None:
    assert parse_address("--listen", "[::1]:0") == ("::1", 0)
    assert parse_upstream("--flat", "http://svc.ns.svc.cluster.local:8090/a/b/") == UpstreamAddress(
        "svc.ns.svc.cluster.local", 8090, "/a/b"
    )
    with pytest.raises(ConfigError):
        parse_address("--listen", ":8080")
