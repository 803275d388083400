"""The plugin's one door to the API server, on pykube-ng: kubeconfig, contexts, and the few calls the
commands make. Everything here raises ``Unreachable`` (exit code 3) or ``Rejected`` (the API server's
own refusal, shown as it gave it); nothing else about HTTP leaks into the commands.

pykube-ng reads kubeconfig the way kubectl does (contexts, client certificates, tokens, exec
plugins), so ``kubectl hal9`` talks to the cluster ``kubectl`` talks to. Its object layer needs API
discovery; the plugin only needs a handful of paths, so it calls them directly on pykube's HTTP client.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import threading
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pykube
import requests

from ..models import GROUP, PLURAL, VERSION
from ..traffic.base import Router

API_VERSION = f"{GROUP}/{VERSION}"
FIELD_MANAGER = "kubectl-hal9"
# The API server ends each watch after this; the plugin starts another from the last version seen.
WATCH_SECONDS = int(os.environ.get("HAL9_KUBECTL_WATCH_SECONDS", "240"))


class Unreachable(Exception):
    """The cluster, or the object asked for, cannot be reached (a missing one, or no permission)."""


class Rejected(Exception):
    """The API server refused a request; ``str()`` is its refusal worded the way kubectl prints it."""

    def __init__(self, reason: str, message: str, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.details = details or {}

    def __str__(self) -> str:
        """kubectl's wording: an Invalid object lists each cause on its own line; anything else is
        ``Error from server (Reason): message``."""
        causes = self.details.get("causes") or []
        if self.reason == "Invalid" and causes:
            head = f'The {self.details.get("kind", "object")} "{self.details.get("name", "")}" is invalid: '
            lines = [f"{c.get('field') or '<nil>'}: {c.get('message', '')}" for c in causes]
            return head + lines[0] if len(lines) == 1 else head + "\n" + "\n".join(f"* {x}" for x in lines)
        return f"Error from server ({self.reason}): {self.message}"


def kubeconfig_path(explicit: str | None) -> Path:
    """``--kubeconfig``, else the first existing file of ``$KUBECONFIG``, else ``~/.kube/config``."""
    if explicit:
        return Path(explicit).expanduser()
    for part in os.environ.get("KUBECONFIG", "").split(os.pathsep):
        if part and Path(part).expanduser().is_file():
            return Path(part).expanduser()
    return Path("~/.kube/config").expanduser()


@dataclass
class Cluster:
    api: pykube.HTTPClient
    namespace: str  # -n, else the context's namespace
    server: str

    # --- reading ---------------------------------------------------------------------------------

    def get(self, name: str, namespace: str | None = None) -> dict[str, Any]:
        found = self.find(name, namespace)
        if found is None:
            raise Unreachable(
                f'Hal9Migration "{name}" not found in namespace "{namespace or self.namespace}"'
            )
        return found

    def find(self, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        """The migration, or None when there is none of that name."""
        response = self._call(
            "get", url=f"{PLURAL}/{name}", version=API_VERSION, namespace=namespace or self.namespace
        )
        if response.status_code == 404:
            return None
        return self._body(response)

    def list(self, all_namespaces: bool) -> list[dict[str, Any]]:
        kwargs: dict[str, Any] = {} if all_namespaces else {"namespace": self.namespace}
        body = self._body(self._call("get", url=PLURAL, version=API_VERSION, **kwargs))
        items = body.get("items") or []
        return sorted(items, key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))

    def read_route(self, router: Router) -> dict[str, Any] | None:
        """The route object a migration drives, or None when it does not exist."""
        response = self._call(
            "get",
            url=f"{router.plural}/{router.name}",
            version=f"{router.group}/{router.version}",
            namespace=router.backends.namespace,
        )
        if response.status_code == 404:
            return None
        return self._body(response)

    def whoami(self) -> str:
        """The user the API server authenticates these credentials as (SelfSubjectReview, Kubernetes
        1.28+): the actor a control records, so history names who really acted."""
        response = self._call(
            "post",
            url="selfsubjectreviews",
            version="authentication.k8s.io/v1",
            data=json.dumps({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}),
            headers={"Content-Type": "application/json"},
        )
        user = self._body(response).get("status", {}).get("userInfo", {}).get("username")
        if not user:
            raise Rejected("Unknown", "the API server did not say who these credentials belong to")
        return str(user)

    # --- writing ---------------------------------------------------------------------------------

    def annotate(
        self, name: str, annotations: Mapping[str, str | None], namespace: str | None = None
    ) -> dict[str, Any]:
        """A merge patch of metadata.annotations only: never the spec, so the generation stays."""
        patch = {"metadata": {"annotations": dict(annotations)}}
        response = self._call(
            "patch",
            url=f"{PLURAL}/{name}",
            version=API_VERSION,
            namespace=namespace or self.namespace,
            data=json.dumps(patch),
            headers={"Content-Type": "application/merge-patch+json"},
        )
        if response.status_code == 404:
            raise Unreachable(
                f'Hal9Migration "{name}" not found in namespace "{namespace or self.namespace}"'
            )
        return self._body(response)

    def dry_run_apply(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """A server-side apply with ``dryRun=All``: admission (schema, CEL, defaults) runs exactly as for
        ``kubectl apply --server-side``, nothing is stored; the object as it would be is returned."""
        metadata = manifest.get("metadata") or {}
        namespace = metadata.get("namespace") or self.namespace
        response = self._call(
            "patch",
            url=f"{PLURAL}/{metadata.get('name', '')}",
            version=API_VERSION,
            namespace=namespace,
            data=json.dumps(manifest),
            headers={"Content-Type": "application/apply-patch+yaml"},
            params={"dryRun": "All", "fieldManager": FIELD_MANAGER, "force": "true"},
        )
        return self._body(response)

    # --- watching --------------------------------------------------------------------------------

    def watch(
        self, url: str, version: str, namespace: str, name: str, stop: threading.Event
    ) -> Iterator[dict[str, Any] | None]:
        """The object now (None when there is none), then each new version of it (None when it is
        deleted), until ``stop``: a list and a watch of that name, so an object created later shows up.

        A watch the API server ends, or a broken stream, resumes from the last version seen (a fresh
        list when that version is too old); an API server gone for a moment (a restart) is waited out,
        up to 5 s between tries. Only a first read that fails raises, so nothing is missed or polled."""
        version_seen: str | None = None
        started, backoff = False, 0.5
        while not stop.is_set():
            try:
                if version_seen is None:
                    listed = self._body(
                        self._call(
                            "get",
                            url=url,
                            version=version,
                            namespace=namespace,
                            params={"fieldSelector": f"metadata.name={name}"},
                        )
                    )
                    items = listed.get("items") or []
                    version_seen = str(listed["metadata"]["resourceVersion"])
                    started = True
                    yield items[0] if items else None
                version_seen = yield from self._follow(url, version, namespace, name, version_seen, stop)
                backoff = 0.5
            except (Unreachable, Rejected, requests.RequestException):
                if not started:
                    raise
                stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)

    def _follow(
        self, url: str, version: str, namespace: str, name: str, since: str, stop: threading.Event
    ) -> Generator[dict[str, Any] | None, None, str | None]:
        """One watch from ``since``; returns the last version seen (None: list again)."""
        params = {
            "watch": "true",
            "fieldSelector": f"metadata.name={name}",
            "resourceVersion": since,
            "timeoutSeconds": str(WATCH_SECONDS),
            "allowWatchBookmarks": "true",
        }
        response = self._call(
            "get",
            url=url,
            version=version,
            namespace=namespace,
            params=params,
            stream=True,
            timeout=(10, WATCH_SECONDS + 30),
        )
        with contextlib.closing(response):
            if response.status_code == 410:
                return None
            self._check(response)
            version_seen: str | None = since
            for line in response.iter_lines():
                if stop.is_set():
                    return version_seen
                try:
                    event = json.loads(line) if line else None
                except ValueError:
                    event = None  # a torn line: the next event or a fresh list puts it right
                if not isinstance(event, dict):
                    continue
                obj = event.get("object") or {}
                if event.get("type") == "ERROR":
                    return None  # typically 410 Gone: list afresh
                version_seen = obj.get("metadata", {}).get("resourceVersion", version_seen)
                if event.get("type") == "DELETED":
                    yield None
                elif event.get("type") in ("ADDED", "MODIFIED"):
                    yield obj
            return version_seen

    def migration_watch(self, name: str, stop: threading.Event) -> Iterator[dict[str, Any] | None]:
        return self.watch(PLURAL, API_VERSION, self.namespace, name, stop)

    # --- plumbing --------------------------------------------------------------------------------

    def _call(self, method: str, **kwargs: Any) -> requests.Response:
        try:
            return getattr(self.api, method)(**kwargs)  # type: ignore[no-any-return]
        except (requests.exceptions.InvalidHeader, ValueError) as error:
            # Its message quotes the header, i.e. the token: never print it.
            raise Unreachable(
                "the kubeconfig's credentials cannot be sent (a token or header value is malformed, "
                "e.g. ends with a newline)"
            ) from error
        except requests.RequestException as error:
            raise Unreachable(f"cannot reach the API server at {self.server}: {_short(error)}") from error

    def _check(self, response: requests.Response) -> None:
        if response.status_code < 400:
            return
        try:
            payload = response.json()
        except ValueError:
            payload = {}
        message = payload.get("message") or response.text.strip() or response.reason
        reason = payload.get("reason") or response.reason or str(response.status_code)
        if response.status_code in (401, 403):
            raise Unreachable(f"Error from server ({reason}): {message}")
        raise Rejected(str(reason), str(message), payload.get("details"))

    def _body(self, response: requests.Response) -> dict[str, Any]:
        self._check(response)
        return response.json()  # type: ignore[no-any-return]


def _short(error: Exception) -> str:
    """The last line of a requests error: "Connection refused", not a page of urllib3 internals."""
    text = str(error)
    return text.rsplit(": ", 1)[-1].rstrip("'\")") if ": " in text else text


def connect(kubeconfig: str | None, context: str | None, namespace: str | None) -> Cluster:
    """Credentials and namespace as ``kubectl`` would choose them with the same flags."""
    path = kubeconfig_path(kubeconfig)
    try:
        config = pykube.KubeConfig.from_file(str(path))
        if context:
            if context not in config.contexts:
                raise Unreachable(f'context "{context}" does not exist in {path}')
            config.set_current_context(context)
        server = str(config.cluster["server"])
        chosen = namespace or config.namespace
    except (pykube.exceptions.PyKubeError, KeyError, OSError) as error:
        raise Unreachable(f"cannot read kubeconfig {path}: {error}") from error
    return Cluster(api=pykube.HTTPClient(config), namespace=chosen, server=server)


def merged(stop: threading.Event, *sources: Iterator[Any]) -> Iterator[tuple[int, Any]]:
    """Items of several blocking iterators as they come, tagged with the source's index, until
    ``stop`` is set or the first source ends; a failure in a source is raised here."""
    inbox: queue.Queue[tuple[int, Any, BaseException | None]] = queue.Queue()
    ended = object()

    def pump(index: int, source: Iterator[Any]) -> None:
        try:
            for item in source:
                inbox.put((index, item, None))
        except BaseException as error:  # handed to the reader, who decides
            inbox.put((index, None, error))
        inbox.put((index, ended, None))

    for index, source in enumerate(sources):
        threading.Thread(target=pump, args=(index, source), daemon=True).start()
    while not stop.is_set():
        try:
            index, item, error = inbox.get(timeout=0.25)
        except queue.Empty:
            continue
        if error is not None:
            raise error
        if item is ended:
            if index == 0:
                return
            continue
        yield index, item
