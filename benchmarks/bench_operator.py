"""`make bench-operator`: how fast the operator moves many migrations, and what it costs.

On a fresh local control plane, BENCH_MIGRATIONS (200) migrations, each driving its own Istio
VirtualService (a copy of the sample, hal9-<i>) with second-scale holds (Shadow 1 s, mirror 100 %;
Canary steps 1, 5, 10, 25, 1 s each; targetPhase Canary), are created at once; the operator runs as a
real process (`python -m hal9_migration.cli run --namespace NS`, default recheck interval). One watch
on the namespace's VirtualServices records when each version of each route object arrives.

  - step latency: for each route write that moves the position annotation, the watch's receive time
    minus the time the step fell due (the previous position's ``since`` plus its hold time). The
    first write (not started -> Shadow) falls due when the migration is created (the API server's
    acknowledgement); it is reported apart, as start latency.
  - spec-edit latency: once all hold at Canary 25 (Ready), each spec gets ``trafficSplit: 10``
    (rollback strategy Immediate); from the API server's acknowledgement of the patch to the watch
    event where that route's weight is 10.
  - the operator's RSS at idle (before any migration), peak RSS (VmHWM) and CPU time per stage;
  - whether every migration reached its target, with exactly the expected weights on its route;
  - baseline, measured in the same run: this process's own GET + replace of one VirtualService (and
    how long its write takes to come back through the watch).
Goal (from the issue): step latency p99 < 1 s, peak RSS < 150 MB. Wall-clock (time.time()) is used
on both sides: ``since`` is written by the operator on the same machine.
"""

from __future__ import annotations

import copy
import ctypes
import datetime
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import kubernetes
from tests.support.manifests import ROOT, load_sample, workloads
from tests.support.routes import router_config, sample_route

from hal9_migration import traffic
from hal9_migration.models import GROUP, PLURAL, VERSION, Hal9MigrationSpec
from hal9_migration.testing import controlplane

N = int(os.environ.get("BENCH_MIGRATIONS", "200"))
BASELINE_OPS = int(os.environ.get("BENCH_BASELINE_OPS", "200"))
THREADS = int(os.environ.get("BENCH_THREADS", "8"))
TIMEOUT = float(os.environ.get("BENCH_TIMEOUT", "240"))  # per stage
IDLE_SECONDS = float(os.environ.get("BENCH_IDLE_SECONDS", "3"))
HOLD_SECONDS = float(os.environ.get("BENCH_HOLD_SECONDS", "5"))  # watched at the target: nothing moves
KEEP = os.environ.get("BENCH_KEEP", "") not in ("", "0")  # keep the work directory (operator log)
# Run the operator under cProfile, writing to this path (main thread only: the passes run in threads).
PROFILE = os.environ.get("BENCH_PROFILE", "")

GOAL_P99_SECONDS = 1.0
GOAL_RSS_MB = 150.0
PHASES = {
    "shadow": {"duration": "1s", "mirrorPercent": 100},
    "canary": {"steps": [1, 5, 10, 25], "stepDuration": "1s"},
}
HOLD = {"Shadow": 1.0, "Canary": 1.0}  # seconds each phase's steps are held, as in PHASES
EXPECTED_WALK = [(0, 0), (0, 100), (1, 0), (5, 0), (10, 0), (25, 0)]  # (weight, mirror) on the route
EDITED_WEIGHT = 10
VS = ("networking.istio.io", "v1", "virtualservices")
CLK_TCK = os.sysconf("SC_CLK_TCK")
REQUEST_LABEL = re.compile(r'(\w+)="([^"]*)"')
PASS_LINE = re.compile(r"kopf\.objects: .* generation \d+: ")  # the log line of each pass


# --- helpers --------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def summary(values: list[float]) -> dict[str, Any]:
    return {
        "count": len(values),
        "p50": percentile(values, 50),
        "p99": percentile(values, 99),
        "max": max(values) if values else float("nan"),
        "mean": statistics.fmean(values) if values else float("nan"),
    }


def ms(stats: dict[str, Any]) -> str:
    return (
        f"p50 {stats['p50'] * 1000:7.1f} ms  p99 {stats['p99'] * 1000:7.1f} ms  "
        f"max {stats['max'] * 1000:7.1f} ms  (n={stats['count']})"
    )


def parse_since(text: str) -> float:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (its own, not its children's)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent on anything but idle and iowait since boot."""
    fields = [int(f) for f in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / CLK_TCK


def memory_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def _die_with_parent() -> None:
    """In the child: SIGTERM when this benchmark dies, even by SIGKILL."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def in_parallel(fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
    pool = ThreadPoolExecutor(THREADS)
    try:
        return list(pool.map(fn, items))
    finally:  # on Ctrl-C, drop what has not started
        pool.shutdown(wait=True, cancel_futures=True)


def wait_for(predicate: Callable[[], bool], timeout: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


# --- the watch ------------------------------------------------------------------------------------


class RouteWatch:
    """One watch on the namespace's VirtualServices; every event with its wall-clock receive time."""

    def __init__(self, api: kubernetes.client.ApiClient, namespace: str, reader: traffic.Router) -> None:
        self.api, self.namespace, self.reader = api, namespace, reader
        self.events: list[tuple[float, str, dict[str, Any]]] = []  # (received, type, object)
        self.current: dict[str, tuple[int | None, int | None]] = {}  # name -> (weight, mirror) now
        self._stopped = threading.Event()
        self._started = threading.Event()
        self._watch: kubernetes.watch.Watch | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="route-watch")

    def start(self) -> RouteWatch:
        self._thread.start()
        self._started.wait(10)
        return self

    def stop(self) -> None:
        self._stopped.set()
        if self._watch is not None:
            self._watch.stop()
        self._thread.join(5)

    def routing(self, obj: dict[str, Any]) -> tuple[int | None, int | None]:
        try:
            seen = self.reader.read_routes(obj)
        except traffic.RouteProblem:
            return (None, None)
        return (seen.weight, seen.mirror)

    def count(self, wanted: tuple[int, int], names: Iterable[str]) -> int:
        return sum(1 for name in names if self.current.get(name) == wanted)

    def _run(self) -> None:
        api = kubernetes.client.CustomObjectsApi(self.api)
        resource_version: str | None = None
        while not self._stopped.is_set():
            self._watch = kubernetes.watch.Watch()
            extra = {"resource_version": resource_version} if resource_version else {}
            self._started.set()
            try:
                for event in self._watch.stream(
                    api.list_namespaced_custom_object,
                    *VS[:2],
                    self.namespace,
                    VS[2],
                    timeout_seconds=3600,
                    **extra,
                ):
                    received = time.time()
                    obj = event["object"]
                    if event["type"] == "ERROR":  # e.g. 410 Gone: start over from now
                        resource_version = None
                        break
                    resource_version = obj["metadata"]["resourceVersion"]
                    self.events.append((received, event["type"], obj))
                    if event["type"] != "DELETED":
                        self.current[obj["metadata"]["name"]] = self.routing(obj)
            except Exception as error:  # the server closed the watch: resume from the last version
                if not self._stopped.is_set():
                    print(f"  (route watch restarted: {type(error).__name__}: {error})", file=sys.stderr)
                    time.sleep(0.1)


# --- the world ------------------------------------------------------------------------------------


def client(kubeconfig: str) -> kubernetes.client.ApiClient:
    config = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(config_file=kubeconfig, client_configuration=config)
    config.connection_pool_maxsize = max(THREADS * 2, 16)
    return kubernetes.client.ApiClient(config)


def kubectl(plane: controlplane.ControlPlane, *args: str, stdin: str | None = None, attempts: int = 1) -> str:
    for attempt in range(1, attempts + 1):
        result = subprocess.run(
            [plane.kubectl, *args], env=plane.env(), input=stdin, capture_output=True, text=True, check=False
        )
        if result.returncode == 0 or "AlreadyExists" in result.stderr:
            return result.stdout
        if attempt < attempts:
            time.sleep(0.5)
    raise SystemExit(f"kubectl {' '.join(args)} failed:\n{result.stderr}")


def route_name(i: int) -> str:
    return f"hal9-{i}"


def migration_manifest(i: int) -> dict[str, Any]:
    obj = load_sample("flat-to-hierarchical")
    obj["metadata"] = {"name": f"m-{i}"}
    spec = obj["spec"]
    spec.pop("analysis", None)
    spec.pop("trafficSplit", None)
    spec.update(
        {
            "targetPhase": "Canary",
            "phases": copy.deepcopy(PHASES),
            "trafficRouter": router_config("istio", route_name(i)),
            "rollback": {"strategy": "Immediate"},
            "progressDeadline": "10m",
        }
    )
    return obj


class Operator:
    """`python -m hal9_migration.cli run --namespace NS` as a real process, logging to a file."""

    def __init__(self, env: dict[str, str], namespace: str, log_path: Path) -> None:
        env = {k: v for k, v in env.items() if k != "HAL9_RECHECK_SECONDS"}  # the default: 30 s
        self.env = {**env, "PYTHONUNBUFFERED": "1"}
        self.namespace, self.log_path = namespace, log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> int:
        command = [sys.executable]
        if PROFILE:
            command += ["-m", "cProfile", "-o", PROFILE]
        command += ["-m", "hal9_migration.cli", "run", "--namespace", self.namespace]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                command,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches the benchmark only; it stops the operator
                preexec_fn=_die_with_parent,
            )
        return self.proc.pid

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Usage:
    """CPU seconds of the operator, the control plane's processes, this process and the whole machine
    at named moments."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.marks: dict[str, tuple[float, dict[str, float]]] = {}

    def mark(self, name: str) -> None:
        cpu = {p: cpu_seconds(pid) for p, pid in self.pids.items()}
        cpu["bench"] = cpu_seconds(os.getpid())
        cpu["machine"] = machine_busy_seconds()
        self.marks[name] = (time.monotonic(), cpu)

    def between(self, start: str, end: str) -> dict[str, Any]:
        (t0, a), (t1, b) = self.marks[start], self.marks[end]
        wall = t1 - t0
        cpu = {p: b[p] - a[p] for p in a}
        # Whatever else ran on the machine meanwhile (other test runs share these cores).
        cpu["others"] = max(0.0, cpu["machine"] - sum(v for k, v in cpu.items() if k != "machine"))
        return {
            "wall_seconds": wall,
            "cpu_seconds": cpu,
            "cpu_percent": {p: 100 * c / wall for p, c in cpu.items()},
        }


# --- the stages -----------------------------------------------------------------------------------


def baseline(api: kubernetes.client.ApiClient, namespace: str, watch: RouteWatch) -> dict[str, Any]:
    """This process's own GET + replace of one VirtualService, sequentially, with nothing else running."""
    custom = kubernetes.client.CustomObjectsApi(api)
    name = "hal9-baseline"
    custom.create_namespaced_custom_object(*VS[:2], namespace, VS[2], sample_route("istio", name))
    round_trips, acks = [], {}
    for i in range(BASELINE_OPS):
        started = time.time()
        obj = custom.get_namespaced_custom_object(*VS[:2], namespace, VS[2], name)
        obj["metadata"].setdefault("labels", {})["bench-op"] = str(i)
        written = custom.replace_namespaced_custom_object(*VS[:2], namespace, VS[2], name, obj)
        acked = time.time()
        round_trips.append(acked - started)
        acks[written["metadata"]["resourceVersion"]] = acked
    wait_for(lambda: sum(1 for _, _, o in watch.events if o["metadata"]["name"] == name) > BASELINE_OPS, 10)
    to_watch = [
        received - acks[obj["metadata"]["resourceVersion"]]
        for received, _, obj in watch.events
        if obj["metadata"]["resourceVersion"] in acks
    ]
    return {"get_replace": summary(round_trips), "write_to_watch": summary(to_watch)}


def request_counts(plane: controlplane.ControlPlane) -> dict[str, float]:
    """The API server's apiserver_request_total, summed by verb, resource and subresource."""
    counts: dict[str, float] = {}
    for line in kubectl(plane, "get", "--raw", "/metrics").splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels = dict(REQUEST_LABEL.findall(line))
        key = " ".join(
            p for p in (labels.get("verb"), labels.get("resource"), labels.get("subresource")) if p
        )
        counts[key] = counts.get(key, 0) + float(line.rsplit(" ", 1)[1])
    return counts


def request_diff(before: dict[str, float], after: dict[str, float]) -> dict[str, int]:
    diff = {k: round(v - before.get(k, 0)) for k, v in after.items()}
    return dict(sorted(((k, v) for k, v in diff.items() if v > 0), key=lambda kv: -kv[1]))


def statuses(api: kubernetes.client.ApiClient, namespace: str) -> list[dict[str, Any]]:
    listed = kubernetes.client.CustomObjectsApi(api).list_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL
    )
    return list(listed["items"])


def ready_count(api: kubernetes.client.ApiClient, namespace: str, reason: str | None = None) -> int:
    count = 0
    for obj in statuses(api, namespace):
        status = obj.get("status") or {}
        if status.get("observedGeneration") != obj["metadata"].get("generation"):
            continue
        for c in status.get("conditions", []):
            if c["type"] == "Ready" and c["status"] == "True" and reason in (None, c.get("reason")):
                count += 1
    return count


def analyse(
    watch: RouteWatch, names: list[str], created: dict[str, float], edited: dict[str, float]
) -> dict[str, Any]:
    """Latencies and the weight sequence per route, from the watch's record."""
    by_route: dict[str, list[tuple[float, dict[str, Any]]]] = {n: [] for n in names}
    for received, kind, obj in watch.events:
        name = obj["metadata"]["name"]
        if name in by_route and kind != "DELETED":
            by_route[name].append((received, obj))
    step, start, edit = [], [], []
    by_step: dict[str, list[float]] = {}
    walks_ok, edits_ok, writes, rewrites = 0, 0, 0, 0
    bad: list[str] = []
    for name, versions in by_route.items():
        migration = "m-" + name.split("-", 1)[1]
        previous: dict[str, Any] | None = None
        routing: list[tuple[int | None, int | None]] = []
        edit_seen = False
        for received, obj in versions:
            pair = watch.routing(obj)
            if not routing or routing[-1] != pair:
                routing.append(pair)
            writes += 1
            text = (obj["metadata"].get("annotations") or {}).get(traffic.MEMORY_ANNOTATION)
            record = json.loads(text) if text else None
            if record is None:
                continue
            position = (record["phase"], record["step"], record["weight"], record["mirror"])
            if previous is not None and position == (
                previous["phase"],
                previous["step"],
                previous["weight"],
                previous["mirror"],
            ):
                rewrites += record != previous
                previous = record
                continue
            if previous is None:
                start.append(received - created[migration])
            elif (
                migration in edited
                and record["weight"] == EDITED_WEIGHT
                and previous["weight"] > EDITED_WEIGHT
            ):
                edit.append(received - edited[migration])
                edit_seen = True
            else:
                due = parse_since(previous["since"]) + HOLD[previous["phase"]]
                step.append(received - due)
                label = f"{previous['phase']} {previous['weight']} -> {record['phase']} {record['weight']}"
                by_step.setdefault(label, []).append(received - due)
            previous = record
        walk = routing[: len(EXPECTED_WALK)]
        if walk == EXPECTED_WALK:
            walks_ok += 1
        else:
            bad.append(f"{name}: {routing}")
        if edit_seen and routing == [*EXPECTED_WALK, (EDITED_WEIGHT, 0)]:
            edits_ok += 1
    return {
        "start": summary(start),
        "step": summary(step),
        "by_step": {k: summary(v) for k, v in by_step.items()},
        "edit": summary(edit),
        "walks_exact": walks_ok,
        "edits_exact": edits_ok,
        "route_events": writes,
        "same_position_rewrites": rewrites,
        "bad_sequences": bad[:5],
    }


def run(workdir: Path) -> dict[str, Any]:
    result: dict[str, Any] = {"migrations": N, "cores": os.cpu_count(), "python": sys.version.split()[0]}
    with controlplane.running(workdir / "controlplane") as plane:
        kubectl(plane, "apply", "--server-side", "-f", str(ROOT / "crds"))
        kubectl(plane, "create", "-f", str(ROOT / "tests" / "fixtures" / "third-party-crds"))
        # Retried: a CRD created a moment ago may have no status.conditions yet, which kubectl wait
        # reports as an error instead of waiting.
        kubectl(plane, "wait", "--for=condition=Established", "--timeout=60s", "crd", "--all", attempts=20)
        namespace = f"bench-{uuid.uuid4().hex[:6]}"
        kubectl(plane, "create", "namespace", namespace)
        kubectl(plane, "apply", "-n", namespace, "-f", "-", stdin=workloads())
        api = client(str(plane.kubeconfig))
        custom = kubernetes.client.CustomObjectsApi(api)

        spec = Hal9MigrationSpec.model_validate(migration_manifest(0)["spec"])
        watch = RouteWatch(
            client(str(plane.kubeconfig)), namespace, traffic.router_for(spec, namespace)
        ).start()
        names = [route_name(i) for i in range(N)]
        in_parallel(
            lambda name: custom.create_namespaced_custom_object(
                *VS[:2], namespace, VS[2], sample_route("istio", name)
            ),
            names,
        )
        if not wait_for(lambda: watch.count((0, 0), names) == N, 30):
            raise SystemExit("the route objects did not show up in the watch")
        print(f"  {N} route objects created; baseline ({BASELINE_OPS} GET + replace) ...", flush=True)
        result["baseline"] = baseline(api, namespace, watch)

        operator = Operator(plane.env(), namespace, workdir / "operator.log")
        try:
            pid = operator.start()
            pids = {"operator": pid, **{n: p.pid for n, p in plane.processes.items()}}
            usage = Usage(pids)
            usage.mark("started")
            if not wait_for(lambda: "Initial authentication has finished" in operator.logs(), 60):
                raise SystemExit(f"the operator did not start:\n{operator.logs()[-3000:]}")
            time.sleep(IDLE_SECONDS)
            usage.mark("idle")
            result["rss_idle_mb"] = memory_kib(pid, "VmRSS") / 1024
            print(
                f"  operator idle at {result['rss_idle_mb']:.1f} MB; creating {N} migrations ...", flush=True
            )

            created: dict[str, float] = {}

            def create(i: int) -> None:
                custom.create_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, migration_manifest(i)
                )
                created[f"m-{i}"] = time.time()

            first = time.time()
            requests_before = request_counts(plane)
            usage.mark("walk_start")
            in_parallel(create, range(N))
            result["create_spread_seconds"] = max(created.values()) - first
            at_target = wait_for(lambda: watch.count((25, 0), names) == N, TIMEOUT, 0.2)
            all_ready = wait_for(
                lambda: ready_count(api, namespace, "TargetReached") == N, 60 if at_target else 1, 0.5
            )
            usage.mark("walk_end")
            result["requests_walk"] = request_diff(requests_before, request_counts(plane))
            listed = statuses(api, namespace)
            result["migration_object_bytes"] = max(len(json.dumps(o)) for o in listed) if listed else 0
            result["walk_seconds"] = time.time() - first
            result["reached_target"] = watch.count((25, 0), names)
            result["ready_at_target"] = ready_count(api, namespace, "TargetReached")
            print(
                f"  {result['reached_target']}/{N} at Canary 25, {result['ready_at_target']} Ready "
                f"after {result['walk_seconds']:.1f} s; holding {HOLD_SECONDS:.0f} s ...",
                flush=True,
            )
            events_before = len(watch.events)
            time.sleep(HOLD_SECONDS)
            usage.mark("hold_end")
            result["route_writes_while_holding"] = len(watch.events) - events_before

            edited: dict[str, float] = {}

            def edit(i: int) -> None:
                custom.patch_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, f"m-{i}", {"spec": {"trafficSplit": EDITED_WEIGHT}}
                )
                edited[f"m-{i}"] = time.time()

            if all_ready:
                print(f"  editing {N} specs (trafficSplit {EDITED_WEIGHT}) ...", flush=True)
                requests_before = request_counts(plane)
                usage.mark("edit_start")
                in_parallel(edit, range(N))
                wait_for(lambda: watch.count((EDITED_WEIGHT, 0), names) == N, TIMEOUT, 0.2)
                wait_for(lambda: ready_count(api, namespace) == N, 60, 0.5)
                usage.mark("edit_end")
                result["requests_edit"] = request_diff(requests_before, request_counts(plane))
                result["reached_edit"] = watch.count((EDITED_WEIGHT, 0), names)
                result["ready_after_edit"] = ready_count(api, namespace)
            result["rss_peak_mb"] = memory_kib(pid, "VmHWM") / 1024
            result["rss_end_mb"] = memory_kib(pid, "VmRSS") / 1024
            usage.mark("end")
            result["cpu"] = {
                "idle": usage.between("started", "idle"),
                "walk": usage.between("walk_start", "walk_end"),
                "hold": usage.between("walk_end", "hold_end"),
                **({"edit": usage.between("edit_start", "edit_end")} if "edit_start" in usage.marks else {}),
                "total_operator_seconds": usage.marks["end"][1]["operator"],
            }
            result.update(analyse(watch, names, created, edited))
        finally:
            operator.stop()
            watch.stop()
        log = operator.logs()
        result["operator_log"] = {
            "lines": log.count("\n"),
            "passes": len(PASS_LINE.findall(log)),
            "no_change_passes": log.count("(no change)"),
            "conflict_retries": log.count("retrying on fresh data"),
            "failed_passes": log.count("pass failed"),
            "tracebacks": log.count("Traceback"),
        }
    return result


def report(r: dict[str, Any]) -> None:
    b = r["baseline"]
    step_p50 = r["step"]["p50"]
    print(f"\nbench-operator: {r['migrations']} migrations on {r['cores']} cores, python {r['python']}")
    print(f"  baseline GET + replace (this process)  {ms(b['get_replace'])}")
    print(f"  baseline own write -> watch event      {ms(b['write_to_watch'])}")
    print(f"  start latency (create -> Shadow)       {ms(r['start'])}")
    print(f"  step latency (due -> watch event)      {ms(r['step'])}")
    for label, stats in r["by_step"].items():
        print(f"    {label:<34} {ms(stats)}")
    print(f"  spec-edit latency (ack -> weight 10)   {ms(r['edit'])}")
    ratio = step_p50 / b["get_replace"]["p50"]
    print(f"  step p50 / baseline GET+replace p50    {ratio:.1f} x")
    print(
        f"  reached target {r['reached_target']}/{r['migrations']} (Ready {r['ready_at_target']}), "
        f"walk {r['walk_seconds']:.1f} s (creates spread over {r['create_spread_seconds']:.1f} s); "
        f"exact weight sequences {r['walks_exact']}/{r['migrations']}; "
        f"after edit {r.get('reached_edit', 0)}/{r['migrations']} (exact {r['edits_exact']})"
    )
    print(
        f"  route events {r['route_events']} (one creation, {len(EXPECTED_WALK) - 1} steps and one edit "
        f"each: {r['migrations'] * (len(EXPECTED_WALK) + 1)}), "
        f"same-position rewrites {r['same_position_rewrites']}, "
        f"writes while holding {r['route_writes_while_holding']}"
    )
    print(
        f"  operator RSS idle {r['rss_idle_mb']:.1f} MB, peak (VmHWM) {r['rss_peak_mb']:.1f} MB, "
        f"end {r['rss_end_mb']:.1f} MB"
    )
    for stage in ("idle", "walk", "hold", "edit"):
        if stage in r["cpu"]:
            c = r["cpu"][stage]
            parts = ", ".join(
                f"{p} {c['cpu_seconds'][p]:.1f} s ({c['cpu_percent'][p]:.0f} %)" for p in c["cpu_seconds"]
            )
            print(f"  CPU {stage:<5} {c['wall_seconds']:5.1f} s wall ({r['cores']} cores): {parts}")
    moves = r["migrations"] * (len(EXPECTED_WALK) - 1)
    walk_requests = sum(r["requests_walk"].values())
    top = ", ".join(f"{k} {v}" for k, v in list(r["requests_walk"].items())[:8])
    print(f"  API requests during the walk: {walk_requests} ({walk_requests / moves:.1f} per step): {top}")
    if "requests_edit" in r:
        top = ", ".join(f"{k} {v}" for k, v in list(r["requests_edit"].items())[:6])
        print(f"  API requests during the edit: {sum(r['requests_edit'].values())}: {top}")
    print(f"  largest Hal9Migration object at target: {r['migration_object_bytes']:,} bytes of JSON")
    print(f"  operator CPU total {r['cpu']['total_operator_seconds']:.1f} s; log {r['operator_log']}")
    if r["bad_sequences"]:
        print(f"  unexpected sequences (first 5): {r['bad_sequences']}")
    p99_ok = r["step"]["p99"] < GOAL_P99_SECONDS
    rss_ok = r["rss_peak_mb"] < GOAL_RSS_MB
    r["goals"] = {"step_p99_under_1s": p99_ok, "peak_rss_under_150mb": rss_ok}
    print(
        f"  goals: step p99 < {GOAL_P99_SECONDS:.0f} s: {'met' if p99_ok else 'MISSED'}; "
        f"peak RSS < {GOAL_RSS_MB:.0f} MB: {'met' if rss_ok else 'MISSED'}",
        flush=True,
    )


def main() -> int:
    def _exit(*_: object) -> None:
        raise KeyboardInterrupt

    # Ctrl-C and SIGTERM both unwind through the finally blocks, which stop what was started (even
    # when started in the background, where a shell may have set SIGINT to be ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _exit)
    workdir = Path(tempfile.mkdtemp(prefix="hal9-bench-operator-"))
    print(f"bench-operator: {N} migrations, work directory {workdir}", flush=True)
    try:
        result = run(workdir)
        report(result)
    except KeyboardInterrupt:
        print(
            "\nbench-operator: interrupted; the operator and the control plane are stopped", file=sys.stderr
        )
        return 130
    finally:
        if KEEP:
            print(f"  kept {workdir} (operator.log, controlplane/)")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(without_nan(result)))
    return 0


def without_nan(value: Any) -> Any:
    """NaN (a figure with no samples) as null, so the last line is strict JSON."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: without_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_nan(v) for v in value]
    return value


if __name__ == "__main__":
    sys.exit(main())
