"""A real Flux for tests: source-controller and kustomize-controller out of cluster, pulling from a Git
repository served over smart HTTP on loopback (test and demo code).

Why: a Hal9Migration is meant to be declared in Git. What users rely on under GitOps (a commit walks
the migration, the Kustomization's health check waits for it, ``git revert`` walks it back, an
automatic rollback does not fight the re-applied spec, a manual edit is reverted) is only proved with
the real controllers doing the applying and the health checking. Nothing is mocked: both controllers
are built from their Go modules by ``hack/build-flux.sh`` (recipe and traps in DESIGN.md's appendix
"Flux controllers from their Go modules"), and Git is git itself.

- ``GitServer``: ``git http-backend`` as CGI behind a few lines of ``http.server``, serving the bare
  repositories under one directory on a free loopback port. Smart HTTP, because go-git (what
  source-controller clones with) cannot use the dumb protocol. Read-only: pushes go straight to the bare
  repository on disk (``GitRepo.push``), which is all a test needs.
- ``GitRepo``: a bare repository and a working clone; write files, commit, push, revert.
- ``Flux``: installs the controllers' CRDs (``kubectl apply --server-side``), creates the
  ``flux-system`` namespace, and runs both controllers against ``kubeconfig`` (``RUNTIME_NAMESPACE``
  flux-system, leader election off, every port on loopback: source-controller's artifact server on
  one free port for ``--storage-addr`` and ``--storage-adv-addr``, metrics and health on others).
  kustomize-controller runs with ``--feature-gates=CancelHealthCheckOnNewRevision=true``: without it a
  pending health wait (a migration walking) holds back every new commit until the wait times out.
  ``poke`` asks for a reconcile at once (the ``reconcile.fluxcd.io/requestedAt`` annotation, what
  ``flux reconcile`` sets), so tests do not wait for intervals.

The processes are tied to the thread that starts them (PR_SET_PDEATHSIG, via ``podprocess.spawn``): start
from the test's main thread (a fixture), so a killed test run leaves no controller behind.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType

from . import builds, podprocess
from .controlplane import free_port

CONTROLLERS = ("source-controller", "kustomize-controller")
NAMESPACE = "flux-system"  # RUNTIME_NAMESPACE, as in a real installation
REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"
BRANCH = "main"
STOP_GRACE = 10.0  # seconds
# Commits made by the harness: a fixed identity, so no global git configuration is needed.
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "hal9-tests",
    "GIT_AUTHOR_EMAIL": "hal9-tests@localhost",
    "GIT_COMMITTER_NAME": "hal9-tests",
    "GIT_COMMITTER_EMAIL": "hal9-tests@localhost",
}


class FluxError(RuntimeError):
    pass


def flux_directory() -> Path:
    """The directory with both controllers and their CRDs (``crds/<controller>/``), built into the
    cache on first use (the script reuses a build)."""
    return builds.built("build-flux.sh", "the Flux controllers", FluxError)


def _git(*args: str, cwd: Path) -> str:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(cwd), **GIT_IDENTITY}
    result = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise FluxError(f"git {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout.strip()


# --- Git over smart HTTP ------------------------------------------------------------------------------


class _GitHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    project_root: Path


class _GitHandler(BaseHTTPRequestHandler):
    """One request handed to ``git http-backend`` as CGI (RFC 3875's variables), its answer relayed."""

    server: _GitHTTPServer

    def do_GET(self) -> None:
        self._backend()

    def do_POST(self) -> None:
        self._backend()

    def _backend(self) -> None:
        path, _, query = self.path.partition("?")
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(self.server.project_root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": urllib.parse.unquote(path),
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_ADDR": self.client_address[0],
            "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
            "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
        }
        result = subprocess.run(
            ["git", "http-backend"], input=body, env=env, capture_output=True, timeout=60, check=False
        )
        separator = b"\r\n\r\n" if b"\r\n\r\n" in result.stdout else b"\n\n"
        head, _, payload = result.stdout.partition(separator)
        status, headers = 200, []
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name:
                headers.append((name, value.strip()))
        if result.returncode != 0 and not head:
            status, payload = 500, result.stderr
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: a clone is a dozen requests, and the controllers' logs say what they fetched."""


@dataclass
class GitServer:
    """Serves every bare repository under ``root`` at ``http://127.0.0.1:<port>/<name>.git``."""

    root: Path
    port: int = 0
    _server: _GitHTTPServer | None = field(default=None, init=False, repr=False)
    _thread: threading.Thread | None = field(default=None, init=False, repr=False)

    def start(self) -> GitServer:
        self.root.mkdir(parents=True, exist_ok=True)
        self._server = _GitHTTPServer(("127.0.0.1", self.port), _GitHandler)
        self._server.project_root = self.root
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="git-http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> GitServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}.git"

    def create(self, name: str, workdir: Path) -> GitRepo:
        """A new, empty bare repository ``name`` and a working clone of it in ``workdir``."""
        bare = self.root / f"{name}.git"
        _git("init", "--quiet", "--bare", f"--initial-branch={BRANCH}", str(bare), cwd=self.root)
        workdir.mkdir(parents=True, exist_ok=True)
        _git("init", "--quiet", f"--initial-branch={BRANCH}", cwd=workdir)
        _git("remote", "add", "origin", str(bare), cwd=workdir)
        return GitRepo(workdir, self.url(name))


@dataclass(frozen=True)
class GitRepo:
    """A working clone whose ``origin`` is a bare repository a ``GitServer`` serves at ``url``."""

    workdir: Path
    url: str

    def write(self, files: dict[str, str]) -> None:
        """Write (relative path -> text) into the working tree; nothing is committed yet."""
        for relative, text in files.items():
            path = self.workdir / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)

    def commit(self, message: str) -> str:
        """Commit everything in the working tree and push it; the new commit's SHA."""
        _git("add", "--all", cwd=self.workdir)
        _git("commit", "--quiet", "--message", message, cwd=self.workdir)
        return self.push()

    def revert(self, sha: str) -> str:
        """``git revert`` of one commit, pushed; the new commit's SHA."""
        _git("revert", "--no-edit", sha, cwd=self.workdir)
        return self.push()

    def push(self) -> str:
        _git("push", "--quiet", "origin", f"HEAD:{BRANCH}", cwd=self.workdir)
        return _git("rev-parse", "HEAD", cwd=self.workdir)


# --- the controllers ----------------------------------------------------------------------------------


@dataclass
class Flux:
    """source-controller and kustomize-controller against the cluster ``kubeconfig`` reaches."""

    workdir: Path
    kubeconfig: Path
    kubectl: str
    directory: Path  # from ``flux_directory()``
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict, init=False)
    health_ports: dict[str, int] = field(default_factory=dict, init=False)

    def log_path(self, controller: str) -> Path:
        return self.workdir / f"{controller}.log"

    def start(self, timeout: float = 60) -> Flux:
        """Install the CRDs, start both controllers, and wait until both report ready."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        for controller in CONTROLLERS:
            self._kubectl("apply", "--server-side", "-f", str(self.directory / "crds" / controller))
        for controller in CONTROLLERS:
            self._kubectl(
                "wait",
                "--for=condition=Established",
                "--timeout=60s",
                "-f",
                str(self.directory / "crds" / controller),
            )
        namespace = f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {NAMESPACE}}}\n"
        self._kubectl("apply", "-f", "-", input=namespace)
        storage = free_port()
        (self.workdir / "artifacts").mkdir(exist_ok=True)  # source-controller refuses a missing one
        extra = {
            "source-controller": [
                f"--storage-path={self.workdir / 'artifacts'}",
                f"--storage-addr=127.0.0.1:{storage}",
                f"--storage-adv-addr=127.0.0.1:{storage}",
            ],
            "kustomize-controller": ["--feature-gates=CancelHealthCheckOnNewRevision=true"],
        }
        offsets = {}
        try:
            for controller in CONTROLLERS:
                self.health_ports[controller] = free_port()
                argv = [
                    str(self.directory / controller),
                    "--enable-leader-election=false",
                    "--watch-all-namespaces=true",
                    f"--metrics-addr=127.0.0.1:{free_port()}",
                    f"--health-addr=127.0.0.1:{self.health_ports[controller]}",
                    "--log-level=info",
                    *extra[controller],
                ]
                tmp = self.workdir / f"{controller}-tmp"
                tmp.mkdir(exist_ok=True)
                env = {
                    "PATH": "/usr/bin:/bin",
                    "HOME": str(tmp),
                    "TMPDIR": str(tmp),
                    "KUBECONFIG": str(self.kubeconfig),
                    "RUNTIME_NAMESPACE": NAMESPACE,
                }
                self.procs[controller], offsets[controller] = podprocess.spawn(
                    argv, env=env, cwd=self.workdir, log_path=self.log_path(controller)
                )
            for controller in CONTROLLERS:
                self._wait_ready(controller, timeout, offsets[controller])
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        procs = list(self.procs.values())
        self.procs.clear()
        podprocess.stop_all(procs, STOP_GRACE)
        for proc in procs:
            proc.wait()

    def __enter__(self) -> Flux:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    def poke(self, kind: str, name: str, namespace: str) -> str:
        """Ask for a reconcile now, as ``flux reconcile`` does: a new ``requestedAt`` annotation. Returns
        its value, which the object's ``status.lastHandledReconcileAt`` takes once it is handled."""
        token = str(time.time_ns())
        self._kubectl("annotate", "--overwrite", "-n", namespace, kind, name, f"{REQUESTED_AT}={token}")
        return token

    def log_tail(self, controller: str, chars: int = 4000) -> str:
        path = self.log_path(controller)
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def _wait_ready(self, controller: str, timeout: float, offset: int) -> None:
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.health_ports[controller]}/readyz"
        while time.monotonic() < deadline:
            proc = self.procs[controller]
            if proc.poll() is not None:
                output = podprocess.read_since(self.log_path(controller), offset).decode(errors="replace")
                raise FluxError(f"{controller} exited with {proc.returncode}:\n{output[-3000:]}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.1)
        raise FluxError(f"{controller} not ready after {timeout:g}s:\n{self.log_tail(controller)}")

    def _kubectl(self, *args: str, input: str | None = None) -> str:
        # HOME: kubectl keeps its discovery cache under $HOME/.kube, which must not land in the cwd.
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "KUBECONFIG": str(self.kubeconfig),
            "HOME": str(self.workdir),
        }
        result = subprocess.run(
            [self.kubectl, *args],
            env=env,
            input=input,
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
        if result.returncode != 0:
            raise FluxError(f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
        return result.stdout
