"""The state-migration Job manifest: valid names for any migration, secrets only by reference (pure)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hal9_migration import statejob
from hal9_migration.models import StateMigration

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
SPEC = StateMigration.model_validate(
    {
        "image": "hal9-migration-operator:0.1.0",
        "source": {"urlSecretRef": {"name": "flat-db", "key": "url"}},
        "target": {"urlSecretRef": {"name": "hier-db", "key": "url"}},
        "workers": 3,
        "batchSize": 500,
        "activeDeadline": "2h",
    }
)
# DNS-1123 subdomains, as Kubernetes allows for a Hal9Migration's name (up to 253 characters).
subdomain_label = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?", fullmatch=True)
names = st.lists(subdomain_label, min_size=1, max_size=30).map(".".join).filter(lambda n: len(n) <= 253)


@given(names, st.uuids(), st.integers(min_value=1, max_value=10_000))
def test_job_names_are_valid_and_leave_room_for_the_index(name: str, uid: object, attempt: int) -> None:
    job = statejob.job_name(name, str(uid), attempt)
    assert len(job) <= statejob.MAX_NAME
    assert DNS_LABEL.match(job), job
    assert DNS_LABEL.match(f"{job}-63")  # an Indexed Job's pod hostname
    assert statejob.job_name(name, str(uid), attempt) == job  # stable: a restarted operator finds it


def test_a_253_character_name_gets_a_valid_job() -> None:
    name = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])
    assert len(name) == 253
    manifest = statejob.build_job(
        namespace="hal9", migration=name, uid="0f0e", spec=SPEC, attempt=1, shards=3
    )
    assert DNS_LABEL.match(manifest["metadata"]["name"])
    label = manifest["metadata"]["labels"][statejob.LABEL_MIGRATION]
    assert len(label) <= 63 and re.match(r"^[a-z0-9]([-a-z0-9_.]*[a-z0-9])?$", label)
    assert manifest["metadata"]["ownerReferences"][0]["name"] == name


def test_attempts_and_migrations_get_distinct_jobs() -> None:
    names = {
        statejob.job_name("m", "uid-1", 1),
        statejob.job_name("m", "uid-1", 2),
        statejob.job_name("m", "uid-2", 1),  # the same name re-created: a new object, a new Job
    }
    assert len(names) == 3


def test_the_job_is_indexed_owned_and_restricted() -> None:
    job = statejob.build_job(namespace="hal9", migration="m", uid="u-1", spec=SPEC, attempt=2, shards=3)
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 3, 3)
    assert spec["backoffLimitPerIndex"] == 2 and spec["activeDeadlineSeconds"] == 7200
    owner = job["metadata"]["ownerReferences"][0]
    assert owner | {"uid": "u-1", "controller": True, "kind": "Hal9Migration"} == owner
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert container["command"] == ["hal9-migration", "migrate-state"]
    assert container["args"] == ["--shards", "3", "--batch-size", "500", "--converters", "1"]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
    }
    assert container["resources"] == {
        "requests": {"cpu": "250m", "memory": "256Mi"},
        "limits": {"memory": "1Gi"},
    }
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"


@pytest.mark.parametrize(
    ("resources", "converters"),
    [
        ({}, 1),  # the default request, 250m: converting in the worker itself
        ({"limits": {"cpu": "2"}}, 2),
        ({"limits": {"cpu": "3500m"}}, 3),
        ({"limits": {"cpu": "0.5"}}, 1),
        ({"requests": {"cpu": "4"}}, 4),  # no limit: the request
        ({"requests": {"cpu": "4"}, "limits": {"cpu": "2"}}, 2),
        ({"requests": {"cpu": None}}, 1),
    ],
)
def test_converter_processes_follow_the_cpu_the_worker_is_given(
    resources: dict[str, Any], converters: int
) -> None:
    spec = StateMigration.model_validate({**SPEC.model_dump(by_alias=True), "resources": resources})
    job = statejob.build_job(namespace="hal9", migration="m", uid="u", spec=spec, attempt=1, shards=1)
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--converters") + 1] == str(converters)


def test_database_urls_reach_the_worker_only_as_secret_references() -> None:
    job = statejob.build_job(namespace="hal9", migration="m", uid="u", spec=SPEC, attempt=1, shards=3)
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["env"] == [
        {"name": "HAL9_SOURCE_URL", "valueFrom": {"secretKeyRef": {"name": "flat-db", "key": "url"}}},
        {"name": "HAL9_TARGET_URL", "valueFrom": {"secretKeyRef": {"name": "hier-db", "key": "url"}}},
    ]
    text = json.dumps(job)
    assert "://" not in text  # no URL anywhere in the manifest
