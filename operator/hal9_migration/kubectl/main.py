"""kubectl hal9: watch and steer HAL9 migrations, and dry-run them (the kubectl-hal9 command, which
kubectl finds on PATH)."""

from __future__ import annotations

import argparse
import sys
import textwrap
from typing import NoReturn, TextIO

from ..controls import Verb, annotation
from ..models import parse_duration
from . import commands
from .client import Rejected, Unreachable, connect
from .summary import UNREACHABLE

USAGE_OR_BUG = 4

EXIT_CODES = """exit codes (status, status --watch, list: the worst of them):
  0  at the declared target and healthy (Ready, the latest spec seen, not Degraded); a rehearsal
     at its target too (its status says Rehearsal)
  1  on the way: moving, waiting for a step or a gate, paused, or the operator has not caught up
  2  needs a person: Stalled (deadline, abort, automatic rollback, failed state migration, invalid
     spec, missing object) or Degraded (a rollback trigger is firing, or a gate check failing)
  3  the cluster or the object cannot be reached (no kubeconfig or context, connection refused,
     not found, forbidden)
  4  a mistake on the command line, or an unexpected error
controls: 0 acted on, 1 not consumed within --timeout, 2 refused (by the operator, e.g. nothing to
promote, or by the API server) or not sent because the operator cannot act on controls now.
plan: 0 valid, 2 rejected by the API server or unusable (unreadable file, no Hal9Migration in it)."""

CONTROLS = {
    Verb.PROMOTE: "skip the current step's wait and gate once (the step is recorded as Promoted)",
    Verb.PAUSE: "hold where the migration is; nothing moves until resume",
    Verb.RESUME: "undo a pause (spec.paused, if set, still holds it)",
    Verb.ABORT: "send all traffic back to flat now and hold until retry or a new spec",
    Verb.RETRY: "end a stop (a deadline, an abort, an automatic rollback, a failed state migration) "
    "and restart the deadline clock",
}


def _connection_flags() -> _Parser:
    flags = _Parser(add_help=False)
    group = flags.add_argument_group("cluster")
    group.add_argument("-n", "--namespace", help="the namespace (default: the context's)")
    group.add_argument("--context", help="the kubeconfig context to use (default: the current one)")
    group.add_argument("--kubeconfig", help="path to the kubeconfig (default: $KUBECONFIG, ~/.kube/config)")
    return flags


def _output_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-o", "--output", choices=["text", "json"], default="text", help="text for people, json for machines"
    )


def _seconds(text: str) -> float:
    try:
        return parse_duration(text).total_seconds()
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 30s, 5m, 1h") from error


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on a usage mistake, which is "needs a person" here: exit 4 instead."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(USAGE_OR_BUG, f"{self.prog}: error: {message}\n")


def parser() -> argparse.ArgumentParser:
    top = _Parser(
        prog="kubectl hal9",
        description=__doc__,
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    connection = _connection_flags()

    def add(name: str, help: str, description: str) -> argparse.ArgumentParser:
        command = sub.add_parser(
            name,
            help=help,
            description=textwrap.fill(description, 100),
            parents=[connection],
            epilog=EXIT_CODES,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        return command

    listing = add(
        "list",
        "every migration: phase, step, weight, health, state migration, the condition that matters now",
        "One line per Hal9Migration. The exit code is the worst of them.",
    )
    listing.add_argument("-A", "--all-namespaces", action="store_true", help="list across all namespaces")
    _output_flag(listing)

    status = add(
        "status",
        "one migration in full; --watch redraws it as it changes",
        "The phase timeline with the current step and the earliest time of each phase ahead, the step's "
        "wait, the state migration's progress (rate, ETA), the weights as the route object holds them, "
        "the gate's last verdict, the analysis checks, the conditions and the latest history.",
    )
    status.add_argument("name", help="the Hal9Migration")
    status.add_argument(
        "-w",
        "--watch",
        action="store_true",
        help="redraw on every change of the migration or its route object (API watches, no polling) until "
        "it is at its target or needs a person",
    )
    status.add_argument("--timeout", type=_seconds, help="with --watch: give up after this long (e.g. 10m)")
    _output_flag(status)

    for verb, what in CONTROLS.items():
        control = add(
            verb.value,
            what,
            f"{what[0].upper()}{what[1:]}. Sets the annotation {annotation(verb)}=<you> on the migration "
            "(never its "
            "spec), waits until the operator has consumed it, and prints what it recorded. The actor is "
            "the user the API server authenticates you as.",
        )
        control.add_argument("name", help="the Hal9Migration")
        control.add_argument(
            "--timeout", type=_seconds, default=60.0, help="how long to wait for the operator (default 60s)"
        )
        _output_flag(control)

    hist = add(
        "history",
        "the audit trail: every move and control, with its actor",
        "Every entry of status.history (the last 100): when, from which phase to which, the weight, the "
        "reason, who acted (operator, or the user behind a control) and what happened.",
    )
    hist.add_argument("name", help="the Hal9Migration")
    _output_flag(hist)

    plan = add(
        "plan",
        "dry-run a manifest: the API server's verdict, then every step ahead with its gate and earliest time",
        "Sends each Hal9Migration in FILE to the API server as a server-side dry run (admission errors "
        "show exactly as kubectl apply --server-side shows them; nothing is stored), then prints the plan "
        "from where "
        "the live migration of that name stands (or from the start) to the declared target: each step, "
        "its weight, mirror and targeting, the gate that guards leaving it, and the earliest time it can "
        "be reached. Set spec.rehearsal: true to have the operator walk the plan on real metrics "
        "without moving a request.",
    )
    plan.add_argument("file", help="a YAML manifest (- for stdin)")
    _output_flag(plan)
    return top


def main(argv: list[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    args = parser().parse_args(argv)
    try:
        cluster = connect(args.kubeconfig, args.context, args.namespace)
        if args.command == "list":
            return commands.list_migrations(cluster, args.all_namespaces, args.output, out)
        if args.command == "status":
            if args.watch:
                return commands.watch(cluster, args.name, args.output, args.timeout, out)
            return commands.status(cluster, args.name, args.output, out)
        if args.command == "history":
            return commands.history(cluster, args.name, args.output, out)
        if args.command == "plan":
            return commands.plan_file(cluster, args.file, args.output, out, err)
        return commands.control(cluster, Verb(args.command), args.name, args.timeout, args.output, out)
    except Unreachable as error:
        err.write(f"error: {error}\n")
        return UNREACHABLE
    except Rejected as error:
        err.write(f"{error}\n")
        return UNREACHABLE
    except KeyboardInterrupt:
        return 130
    except Exception as error:
        err.write(
            f"error: unexpected {type(error).__name__}; nothing more is printed, as it may hold credentials\n"
        )
        return USAGE_OR_BUG


if __name__ == "__main__":
    sys.exit(main())
