"""``hal9-migration``: run the operator, print the CRD, start a local control plane."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

# How long a replica's peering record stays valid without a renewal (run --peering-lifetime).
LIFETIME = 15


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hal9-migration", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the operator (all namespaces unless --namespace is given)")
    run.add_argument(
        "-n", "--namespace", action="append", default=[], help="watch only this namespace (repeatable)"
    )
    run.add_argument(
        "--liveness", metavar="URL", help="serve a liveness probe, e.g. http://0.0.0.0:8080/healthz"
    )
    run.add_argument(
        "--metrics", metavar="ADDR", help="serve Prometheus metrics at /metrics on HOST:PORT (e.g. :8081)"
    )
    run.add_argument(
        "--peering",
        metavar="NAME",
        help="run as one of several replicas: only the one with the highest priority acts, the others"
        " wait in the KopfPeering NAME (ClusterKopfPeering NAME when watching all namespaces), which"
        " must exist (crds/kopf-peering.yaml; the chart creates it). Default: standalone, one replica",
    )
    run.add_argument(
        "--priority",
        type=int,
        help="this replica's peering priority (default: drawn at random, so that no two replicas tie;"
        " kopf pauses every replica of a tie)",
    )
    run.add_argument(
        "--peering-lifetime",
        type=int,
        default=LIFETIME,
        metavar="SECONDS",
        help="how long this replica's peering record stays valid without a renewal: a standby takes"
        " over at most this long after the active replica dies (default: %(default)s)",
    )
    run.add_argument("--verbose", action="store_true", help="debug logging")

    crd = commands.add_parser("crd", help="print the CustomResourceDefinition generated from the models")
    crd.add_argument("-o", "--output", type=Path, help="write to this file instead of stdout")

    urls = "database URL (default: $HAL9_SOURCE_URL / $HAL9_TARGET_URL; prefer those, args show in ps)"
    migrate = commands.add_parser(
        "migrate-state", help="migrate neuron state flat -> hierarchical (one shard)"
    )
    migrate.add_argument("--source", help=f"source {urls}")
    migrate.add_argument("--target", help=f"target {urls}")
    migrate.add_argument("--batch-size", type=int, default=1000)
    migrate.add_argument(
        "--shard", type=int, help="this worker's shard (default: $JOB_COMPLETION_INDEX or 0)"
    )
    migrate.add_argument(
        "--shards", type=int, default=1, help="number of shards (an Indexed Job's completions)"
    )
    migrate.add_argument(
        "--converters",
        type=int,
        help="processes converting this shard's batches (default: the CPUs this process may use,"
        " bounded by its container's CPU limit)",
    )

    verify = commands.add_parser("verify-state", help="check source and target agree (NoDataLoss)")
    verify.add_argument("--source", help=f"source {urls}")
    verify.add_argument("--target", help=f"target {urls}")

    seeder = commands.add_parser("seed-state", help="fill a flat store with generated neuron states")
    seeder.add_argument("--url", help="database URL (default: $HAL9_SOURCE_URL)")
    seeder.add_argument("--count", type=int, required=True)
    seeder.add_argument("--seed", type=int, default=0, help="random seed (same seed, same data)")

    shadow = commands.add_parser(
        "shadow-proxy",
        help="answer from flat, send a copy to hierarchical, compare the answers (the Shadow phase)",
    )
    from .shadow import config as shadow_config

    shadow_config.add_arguments(shadow)

    cluster = commands.add_parser(
        "local-cluster",
        help="start a local control plane (etcd, kube-apiserver, controllers, a node agent running pods)",
    )
    cluster.add_argument("action", choices=["up"])
    cluster.add_argument("workdir", type=Path)

    args = parser.parse_args(argv)
    if args.command == "run":
        if not args.peering and (args.priority is not None or args.peering_lifetime != LIFETIME):
            parser.error("--priority and --peering-lifetime take effect only with --peering NAME")
        peering = Peering(args.peering, args.priority, args.peering_lifetime) if args.peering else None
        return _run(args.namespace, args.liveness, args.metrics, peering, args.verbose)
    if args.command == "crd":
        return _crd(args.output)
    if args.command in ("migrate-state", "verify-state", "seed-state"):
        from .statemigration import commands as state

        if args.command == "migrate-state":
            return state.migrate_state(
                args.source, args.target, args.batch_size, args.shard, args.shards, args.converters
            )
        if args.command == "verify-state":
            return state.verify_state(args.source, args.target)
        return state.seed_state(args.url, args.count, args.seed)
    if args.command == "shadow-proxy":
        return _shadow_proxy(args)
    from .testing import controlplane

    return controlplane.serve(args.workdir)


@dataclass(frozen=True)
class Peering:
    """How this replica takes part in kopf's peering (``run --peering``)."""

    name: str
    priority: int | None
    lifetime: int


def _run(
    namespaces: list[str],
    liveness: str | None,
    metrics: str | None,
    peering: Peering | None,
    verbose: bool,
) -> int:
    import logging
    import secrets

    import kopf

    from . import exporter, handlers  # noqa: F401  (handlers registers itself with kopf)

    if metrics:
        try:
            exporter.serve(metrics)
        except OSError as error:  # e.g. the port is taken: say so, not with a traceback
            print(f"hal9-migration run: cannot serve metrics on {metrics}: {error.strerror}", file=sys.stderr)
            return 1

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    settings = kopf.OperatorSettings()
    priority = None
    if peering is not None:
        # kopf's peering is not leader election: replicas of equal priority all pause. A random
        # priority breaks ties; the highest acts, and a standby resumes when its record expires.
        # The engine's writes are conditional on the resourceVersion read, so a replica that acted
        # just before it saw a higher peer cannot double a step.
        settings.peering.lifetime = peering.lifetime
        priority = peering.priority if peering.priority is not None else secrets.randbelow(2**31) + 1
        logging.getLogger(__name__).info("peering %r with priority %d", peering.name, priority)
    kopf.run(
        settings=settings,
        # Without --peering: no peering objects, and exactly one replica may run.
        standalone=peering is None,
        peering_name=peering.name if peering else None,
        priority=priority,
        clusterwide=not namespaces,
        namespaces=namespaces,
        liveness_endpoint=liveness,
    )
    return 0


def _shadow_proxy(args: argparse.Namespace) -> int:
    from .shadow.config import ConfigError, from_arguments

    try:
        config = from_arguments(args)
    except ConfigError as error:
        print(f"hal9-migration shadow-proxy: error: {error}", file=sys.stderr)
        return 2
    from .shadow.server import run

    return run(config)


def _crd(output: Path | None) -> int:
    from .crd import render_crd

    text = render_crd()
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
