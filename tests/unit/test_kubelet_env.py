"""The kubelet's environment resolution and ``$(VAR)`` expansion, as the node agent applies them.

The expansion cases are Kubernetes' own (third_party/forked/golang/expansion/expand_test.go, v1.34.4),
so a command line or variable expands here exactly as on a real node.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from hal9_migration.testing import kubelet_env as kenv

CONTEXT = {"VAR_A": "A", "VAR_B": "B", "VAR_C": "C", "VAR_REF": "$(VAR_A)", "VAR_EMPTY": ""}
KUBERNETES_CASES = [
    ("$(VAR_A)", "A"),
    ("$(VAR_A)-$(VAR_A)", "A-A"),
    ("$(VAR_A)-1", "A-1"),
    ("___$(VAR_B)___", "___B___"),
    ("___$(VAR_C)", "___C"),
    ("$(VAR_A)_$(VAR_B)_$(VAR_C)", "A_B_C"),
    ("$$(VAR_B)_$(VAR_A)", "$(VAR_B)_A"),
    ("$$(VAR_A)_$$(VAR_B)", "$(VAR_A)_$(VAR_B)"),
    ("f000-$$VAR_A", "f000-$VAR_A"),
    ("foo\\$(VAR_C)bar", "foo\\Cbar"),
    ("foo\\\\$(VAR_C)bar", "foo\\\\Cbar"),
    ("foo\\\\\\\\$(VAR_A)bar", "foo\\\\\\\\Abar"),
    ("$(VAR_A$(VAR_B))", "$(VAR_A$(VAR_B))"),
    ("$(VAR_A$(VAR_B)", "$(VAR_A$(VAR_B)"),
    ("$(VAR_REF)", "$(VAR_A)"),
    ("%%$(VAR_REF)--$(VAR_REF)%%", "%%$(VAR_A)--$(VAR_A)%%"),
    ("foo$(VAR_EMPTY)bar", "foobar"),
    ("foo$(VAR_Awhoops!", "foo$(VAR_Awhoops!"),
    ("f00__(VAR_A)__", "f00__(VAR_A)__"),
    ("$?_boo_$!", "$?_boo_$!"),
    ("$VAR_A", "$VAR_A"),
    ("$(VAR_DNE)", "$(VAR_DNE)"),
    ("$$$$$$(BIG_MONEY)", "$$$(BIG_MONEY)"),
    ("$$$$$$(VAR_A)", "$$$(VAR_A)"),
    ("$$$$$$$(GOOD_ODDS)", "$$$$(GOOD_ODDS)"),
    ("$$$$$$$(VAR_A)", "$$$A"),
    ("$VAR_A)", "$VAR_A)"),
    ("${VAR_A}", "${VAR_A}"),
    ("$(VAR_B)_______$(A", "B_______$(A"),
    ("$(VAR_C)_______$(", "C_______$("),
    ("$(VAR_A)foobarzab$", "Afoobarzab$"),
    ("foo-\\$(VAR_A", "foo-\\$(VAR_A"),
    ("--$($($($($--", "--$($($($($--"),
    ("$($($($($--foo$(", "$($($($($--foo$("),
    ("foo0--$($($($(", "foo0--$($($($("),
    ("$(foo$$var)", "$(foo$$var)"),
    ("\n", "\n"),
    ("$£FOO", "$£FOO"),
    ("prefix-$€-suffix", "prefix-$€-suffix"),
    ("$中文", "$中文"),
]


@pytest.mark.parametrize(("text", "expected"), KUBERNETES_CASES)
def test_expansion_matches_kubernetes(text: str, expected: str) -> None:
    assert kenv.expand(text, CONTEXT) == expected


POD: dict[str, Any] = {
    "metadata": {
        "name": "worker-1-abcde",
        "namespace": "hal9",
        "uid": "1234-5678",
        "labels": {"app": "hal9", "tier": "state"},
        "annotations": {"batch.kubernetes.io/job-completion-index": "1", "quote": 'say "hi"\n'},
    },
    "spec": {"nodeName": "hal9-local", "serviceAccountName": "worker", "hostname": "worker-1"},
}


class Store:
    """Secrets and ConfigMaps by name, counting lookups (the kubelet reads each once per container)."""

    def __init__(self, objects: Mapping[str, Mapping[str, str]]) -> None:
        self.objects = objects
        self.lookups: list[str] = []

    def __call__(self, name: str) -> Mapping[str, str] | None:
        self.lookups.append(name)
        return self.objects.get(name)


def resolve(
    container: dict[str, Any], secrets: Store | None = None, maps: Store | None = None
) -> dict[str, str]:
    return kenv.resolve_env(
        POD,
        container,
        secret=secrets or Store({}),
        config_map=maps or Store({}),
        pod_ip="127.0.1.7",
        host_ip="127.0.0.1",
    )


def test_values_expand_against_variables_declared_before_them() -> None:
    env = [
        {"name": "FOO", "value": "bar"},
        {"name": "ZOO", "value": "$(FOO)-1"},
        {"name": "BLU", "value": "$(ZOO)-2"},
        {"name": "EARLY", "value": "$(LATE)"},  # declared later: left as written
        {"name": "LATE", "value": "x"},
        {"name": "EMPTY"},
    ]
    assert resolve({"env": env}) == {
        "FOO": "bar",
        "ZOO": "bar-1",
        "BLU": "bar-1-2",
        "EARLY": "$(LATE)",
        "LATE": "x",
        "EMPTY": "",
    }


def test_env_from_comes_first_and_env_overrides_it() -> None:
    maps = Store({"settings": {"mode": "fast", "size": "3"}})
    secrets = Store({"db": {"url": "postgres://x", "user": "hal9"}})
    container = {
        "envFrom": [
            {"configMapRef": {"name": "settings"}, "prefix": "CM_"},
            {"secretRef": {"name": "db"}},
            {"configMapRef": {"name": "absent", "optional": True}},
        ],
        "env": [{"name": "user", "value": "override of $(CM_mode)"}],
    }
    assert resolve(container, secrets, maps) == {
        "CM_mode": "fast",
        "CM_size": "3",
        "url": "postgres://x",
        "user": "override of fast",
    }


@pytest.mark.parametrize(
    ("container", "message"),
    [
        ({"envFrom": [{"secretRef": {"name": "absent"}}]}, 'secret "absent" not found'),
        ({"envFrom": [{"configMapRef": {"name": "absent"}}]}, 'configmap "absent" not found'),
        (
            {"env": [{"name": "U", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "url"}}}]},
            'secret "absent" not found',
        ),
        (
            {"env": [{"name": "U", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}]},
            "couldn't find key password in Secret hal9/db",
        ),
        (
            {"env": [{"name": "M", "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "mode"}}}]},
            'configmap "absent" not found',
        ),
        (
            {"env": [{"name": "M", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "nope"}}}]},
            "couldn't find key nope in ConfigMap hal9/settings",
        ),
        (
            {"env": [{"name": "C", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}}]},
            "resourceFieldRef (limits.cpu) is not supported",
        ),
    ],
)
def test_a_missing_source_is_a_config_error_with_the_kubelets_message(
    container: dict[str, Any], message: str
) -> None:
    secrets, maps = Store({"db": {"url": "u"}}), Store({"settings": {"mode": "m"}})
    with pytest.raises(kenv.ConfigError) as error:
        resolve(container, secrets, maps)
    assert message in str(error.value)


def test_optional_sources_that_are_missing_leave_the_variable_unset() -> None:
    env = [
        {"name": "A", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "k", "optional": True}}},
        {"name": "B", "valueFrom": {"secretKeyRef": {"name": "db", "key": "nope", "optional": True}}},
        {"name": "C", "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "k", "optional": True}}},
        {"name": "D", "valueFrom": {"secretKeyRef": {"name": "db", "key": "url"}}},
    ]
    assert resolve({"env": env}, Store({"db": {"url": "u"}})) == {"D": "u"}


def test_each_object_is_read_once_per_container() -> None:
    secrets = Store({"db": {"url": "u", "user": "x"}})
    env = [
        {"name": "URL", "valueFrom": {"secretKeyRef": {"name": "db", "key": "url"}}},
        {"name": "USER", "valueFrom": {"secretKeyRef": {"name": "db", "key": "user"}}},
    ]
    resolve({"envFrom": [{"secretRef": {"name": "db"}}], "env": env}, secrets)
    assert secrets.lookups == ["db"]


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("metadata.name", "worker-1-abcde"),
        ("metadata.namespace", "hal9"),
        ("metadata.uid", "1234-5678"),
        ("metadata.labels['app']", "hal9"),
        ("metadata.labels['absent']", ""),
        ("metadata.annotations['batch.kubernetes.io/job-completion-index']", "1"),  # JOB_COMPLETION_INDEX
        ("metadata.labels", 'app="hal9"\ntier="state"'),
        ("metadata.annotations", 'batch.kubernetes.io/job-completion-index="1"\nquote="say \\"hi\\"\\n"'),
        ("spec.nodeName", "hal9-local"),
        ("spec.serviceAccountName", "worker"),
        ("status.podIP", "127.0.1.7"),
        ("status.podIPs", "127.0.1.7"),
        ("status.hostIP", "127.0.0.1"),
    ],
)
def test_field_refs(path: str, value: str) -> None:
    env = [{"name": "V", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}}]
    assert resolve({"env": env}) == {"V": value}


@pytest.mark.parametrize("path", ["spec.containers", "metadata.name['x']", "status.phase"])
def test_unsupported_field_paths_are_config_errors(path: str) -> None:
    with pytest.raises(kenv.ConfigError, match="fieldPath"):
        resolve({"env": [{"name": "V", "valueFrom": {"fieldRef": {"fieldPath": path}}}]})


def test_command_and_args_expand_against_the_declared_variables() -> None:
    container = {
        "name": "worker",
        "command": ["hal9-migration", "$(SUBCOMMAND)"],
        "args": ["--shard", "$(INDEX)", "$$(INDEX)", "$(UNDECLARED)", "$HOME"],
    }
    variables = {"SUBCOMMAND": "migrate-state", "INDEX": "2"}
    assert kenv.command_line(container, variables) == [
        "hal9-migration",
        "migrate-state",
        "--shard",
        "2",
        "$(INDEX)",
        "$(UNDECLARED)",
        "$HOME",  # for a shell to expand, not the kubelet
    ]


@pytest.mark.parametrize(
    "container", [{"name": "w"}, {"name": "w", "args": ["--flag"]}, {"name": "w", "command": []}]
)
def test_without_command_there_is_nothing_to_run(container: dict[str, Any]) -> None:
    with pytest.raises(kenv.StartError, match="has no command"):
        kenv.command_line(container, {})


def test_the_process_environment_is_a_minimal_base_plus_the_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", "/secret/admin.kubeconfig")
    env = kenv.process_env(
        {"LANG": "de_DE.UTF-8", "URL": "u"}, path="/venv/bin:/usr/bin", home="/pods/p/home", hostname="p"
    )
    assert env == {
        "PATH": "/venv/bin:/usr/bin",
        "HOME": "/pods/p/home",
        "HOSTNAME": "p",
        "LANG": "de_DE.UTF-8",
        "URL": "u",
    }


def test_hostname_is_the_spec_hostname_or_the_pod_name_as_a_dns_label() -> None:
    assert kenv.pod_hostname(POD) == "worker-1"
    long_name = {"metadata": {"name": "a" * 62 + "-b" + "c" * 10}, "spec": {}}
    assert kenv.pod_hostname(long_name) == "a" * 62
