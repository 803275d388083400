"""The analysis run's edge: the provider's credentials from their Secrets, then the queries.

Credentials are read on every run (once per ``analysis.interval``), so a rotated token is picked up
without a restart. They go to the provider and nowhere else: a missing Secret becomes a reason that
names the Secret and key, never a value.
"""

from __future__ import annotations

from datetime import datetime

from . import analysis, kube
from .models import Hal9MigrationSpec, SecretKeyRef


def measure(
    namespace: str, spec: Hal9MigrationSpec, request: analysis.Request, now: datetime
) -> analysis.Run:
    provider = analysis.provider_for(spec, credentials(namespace, spec))
    return analysis.measure(provider, request, now)


def credentials(namespace: str, spec: Hal9MigrationSpec) -> analysis.Credentials:
    prometheus = spec.analysis.prometheus
    if prometheus is None:
        return analysis.Credentials()
    problems: list[str] = []

    def read(ref: SecretKeyRef | None) -> str | None:
        if ref is None:
            return None
        value, problem = kube.read_secret_value(namespace, ref.name, ref.key)
        if problem:
            problems.append(problem)
        return value

    token = read(prometheus.bearer_token_secret_ref)
    username = password = None
    if prometheus.basic_auth is not None:
        auth = prometheus.basic_auth
        username = read(SecretKeyRef(name=auth.secret_name, key=auth.username_key))
        password = read(SecretKeyRef(name=auth.secret_name, key=auth.password_key))
    ca = read(prometheus.ca_secret_ref)
    return analysis.Credentials(
        bearer_token=token,
        username=username,
        password=password,
        ca_pem=ca,
        problem="; ".join(problems) or None,
    )
