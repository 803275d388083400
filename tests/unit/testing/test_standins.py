"""The stand-in objects: the sample YAML is what the builders make, and the Deployment runs the
stand-in the way the node agent and a kubelet will start it."""

from __future__ import annotations

import pytest
import yaml

from hal9_migration.testing import kubelet_env as kenv
from hal9_migration.testing.standin import KNOB_NAMES, Knobs
from hal9_migration.testing.standins import build_standin_deployment, build_standins
from tests.support.manifests import SAMPLES


def test_the_sample_is_what_the_builders_make() -> None:
    docs = list(yaml.safe_load_all((SAMPLES / "hal9-standins.yaml").read_text()))
    assert docs[0] == {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "hal9"}}
    assert docs[1:] == build_standins("hal9")


def test_the_container_listens_on_its_pod_ip_with_every_knob_explicit() -> None:
    deployment = build_standin_deployment("ns", "hierarchical", port=9001, knobs={"HAL9_ERROR_RATE": "0.3"})
    template = deployment["spec"]["template"]
    container = template["spec"]["containers"][0]
    pod = {"metadata": {"name": "p", "namespace": "ns"}, "spec": template["spec"]}
    env = kenv.resolve_env(
        pod,
        container,
        secret=lambda _: None,
        config_map=lambda _: None,
        pod_ip="127.0.3.4",
        host_ip="127.0.0.1",
    )
    argv = kenv.command_line(container, env)
    assert argv == [
        "python",
        "-m",
        "hal9_migration.testing.standin",
        "--system",
        "hierarchical",
        "--host",
        "127.0.3.4",
        "--port",
        "9001",
    ]
    assert Knobs.from_env(env) == Knobs(error_rate=0.3)
    assert set(KNOB_NAMES) <= set(env)
    assert template["metadata"]["annotations"]["prometheus.io/port"] == "9001"
    assert deployment["spec"]["selector"]["matchLabels"].items() <= template["metadata"]["labels"].items()


def test_unknown_knobs_and_systems_are_refused() -> None:
    with pytest.raises(ValueError, match="HAL9_EROR_RATE"):
        build_standin_deployment("ns", "flat", knobs={"HAL9_EROR_RATE": "0.3"})
    with pytest.raises(ValueError, match="system"):
        build_standin_deployment("ns", "hybrid")
