"""The Prometheus provider against a real Prometheus scraping the HAL9 stand-ins: a value, or a
readable reason it has none (no series, NaN, a rejected query, several series, a server that is down).
"""

from __future__ import annotations

import json
from pathlib import Path

import kubernetes

from hal9_migration import analysis, analysiswatch
from hal9_migration.analysis.prometheus import PrometheusProvider
from hal9_migration.models import Hal9MigrationSpec
from hal9_migration.testing.prometheus import Prometheus, WebSecurity
from tests.integration.conftest import Cluster, wait_until
from tests.support.manifests import load_sample
from tests.support.traffic import (
    Standins,
    http,
    wait_scraped,
)


def test_values_and_the_reasons_for_none(standins: Standins, prometheus: Prometheus) -> None:
    ns = standins.namespace
    wait_scraped(prometheus, ns, pods=2)
    provider = PrometheusProvider(prometheus.url, timeout=5)
    for i in range(40):
        assert (
            http(standins.urls["hierarchical"] + "/process", json.dumps({"input": f"r{i}"}).encode())[0]
            == 200
        )
    requests = f'sum(hal9_requests_total{{namespace="{ns}",system="hierarchical"}})'
    wait_until(lambda: provider.query(requests).value == 40, 30, "Prometheus to scrape 40 requests")

    errors = (
        f'sum(rate(hal9_errors_total{{namespace="{ns}",system="hierarchical"}}[5s])) / '
        f'sum(rate(hal9_requests_total{{namespace="{ns}",system="hierarchical"}}[5s]))'
    )
    # The requests stopped: once the 5 s window holds none, the ratio is 0/0.
    nan = wait_until(lambda: (s := provider.query(errors)).value is None and s, 30, "the window to empty")
    assert nan.reason == "the query returned NaN (for a ratio: no requests in the window)"

    absent = provider.query(f'sum(hal9_requests_total{{namespace="{ns}",system="nowhere"}})')
    assert (absent.value, absent.reason) == (None, "the query returned no series")
    several = provider.query(f'hal9_requests_total{{namespace="{ns}"}}')
    assert several.reason == "the query returned 2 series, not one; aggregate it (sum, max ...)"
    bad = provider.query("sum(rate(hal9_requests_total[5s])")
    assert bad.value is None and not bad.unreachable
    assert bad.reason.startswith(f"Prometheus at {prometheus.url} rejected the query: bad_data: ")


def test_a_stopped_server_is_unreachable_and_answers_again_when_back(
    standins: Standins, prometheus: Prometheus
) -> None:
    ns = standins.namespace
    wait_scraped(prometheus, ns, pods=2)
    provider = PrometheusProvider(prometheus.url, timeout=2)
    up = f'count(up{{namespace="{ns}"}} == 1)'
    assert provider.query(up).value == 2
    prometheus.stop()
    down = provider.query(up)
    assert down.value is None and down.unreachable
    assert down.reason.startswith(f"Prometheus at {prometheus.url} is unreachable: ")
    prometheus.start()
    wait_until(lambda: provider.query(up).value == 2, 60, "Prometheus to answer again")


def test_basic_auth_and_a_private_ca_read_from_secrets(
    cluster: Cluster, namespace: str, standins: Standins, tmp_path: Path
) -> None:
    """Against a Prometheus serving HTTPS with a throwaway CA and checking a basic-auth user: the
    operator's edge reads the credentials and the CA from Secrets, and the provider gets an answer;
    a wrong password or a missing CA is a readable, unreachable-kind reason with no secret in it."""
    web = WebSecurity.create(tmp_path / "tls", "analysis", "s3cret-pass")
    secured = Prometheus(
        tmp_path / "prometheus", Path(cluster.env["KUBECONFIG"]), namespaces=[namespace], web=web
    )
    secured.start()
    try:
        wait_scraped(secured, namespace, pods=2)
        cluster.kubectl(
            "create",
            "secret",
            "generic",
            "prom-auth",
            "-n",
            namespace,
            "--from-literal=username=analysis",
            "--from-literal=password=s3cret-pass",
            f"--from-file=ca.crt={web.ca}",
        )
        spec = Hal9MigrationSpec.model_validate(
            {
                **load_sample("flat-to-hierarchical")["spec"],
                "analysis": {
                    "prometheus": {
                        "address": secured.url,
                        "basicAuth": {"secretName": "prom-auth"},
                        "caSecretRef": {"name": "prom-auth", "key": "ca.crt"},
                    }
                },
            }
        )
        # The operator's client (kube.py) reads Secrets with the default configuration, as load_config
        # leaves it; point that at the test cluster.
        kubernetes.config.load_kube_config(config_file=cluster.env["KUBECONFIG"])
        up = f'count(up{{namespace="{namespace}"}} == 1)'
        provider = analysis.provider_for(spec, analysiswatch.credentials(namespace, spec))
        assert provider.query(up).value == 2

        wrong = analysis.Credentials(username="analysis", password="wrong", ca_pem=web.ca.read_text())
        refused = analysis.provider_for(spec, wrong).query(up)
        assert refused.reason == f"Prometheus at {secured.url} refused the credentials (HTTP 401)"
        untrusted = analysis.provider_for(
            spec, analysis.Credentials(username="analysis", password="s3cret-pass")
        )
        failed = untrusted.query(up)
        assert failed.unreachable and "CERTIFICATE_VERIFY_FAILED" in failed.reason
        missing = spec.model_copy(deep=True)
        assert missing.analysis.prometheus is not None and missing.analysis.prometheus.basic_auth is not None
        missing.analysis.prometheus.basic_auth.secret_name = "prom-nowhere"
        gone = analysis.provider_for(missing, analysiswatch.credentials(namespace, missing)).query(up)
        assert gone.reason == (
            f"Prometheus at {secured.url}: Secret {namespace}/prom-nowhere not found; "
            f"Secret {namespace}/prom-nowhere not found"
        )
        for sample in (refused, failed, gone):
            assert "s3cret" not in sample.reason
    finally:
        secured.stop()
