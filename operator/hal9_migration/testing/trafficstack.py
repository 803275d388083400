"""The demo's traffic stack on a running local control plane: Envoy Gateway + Envoy in front of the
HAL9 stand-ins, and Prometheus scraping them (demo code; tests use the fixtures in tests/support).

``python -m hal9_migration.testing.trafficstack WORKDIR --namespace hal9 --listener-port 18080
--prometheus-port 19090`` starts both, writes ``WORKDIR/ready`` with their URLs (shell ``KEY=value``
lines), and runs until SIGTERM or SIGINT, then stops both. Fixed ports let a sample manifest name the
Prometheus address.
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
from pathlib import Path

from .dataplane import DataPlane, envoy_gateway_binary
from .prometheus import Prometheus


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hal9_migration.testing.trafficstack")
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--namespace", action="append", required=True, help="where the stand-ins run")
    parser.add_argument("--listener-port", type=int, default=0, help="the Gateway's HTTP port (0: free)")
    parser.add_argument("--prometheus-port", type=int, default=0, help="Prometheus' port (0: free)")
    args = parser.parse_args(argv)
    kubeconfig = Path(os.environ["KUBECONFIG"])
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    prometheus = Prometheus(
        args.workdir / "prometheus", kubeconfig, namespaces=args.namespace, port=args.prometheus_port
    )
    dataplane = DataPlane(
        kubeconfig,
        "kubectl",
        args.workdir / "dataplane",
        envoy_gateway_binary(),
        listener_port=args.listener_port,
    )
    prometheus.start()
    try:
        with dataplane:
            ready = args.workdir / "ready"
            ready.write_text(f"GATEWAY_URL={dataplane.url}\nPROMETHEUS_URL={prometheus.url}\n")
            print(f"traffic stack ready: gateway {dataplane.url}, prometheus {prometheus.url}", flush=True)
            stop.wait()
    finally:
        prometheus.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
