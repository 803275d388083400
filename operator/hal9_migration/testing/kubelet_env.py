"""A container's environment and command line, resolved the way the kubelet resolves them (pure).

The node agent (``nodeagent.py``) runs pods as local processes; for a test to mean anything, what
reaches the process must be what a real kubelet would give it. So this follows the kubelet's
``makeEnvironmentVariables`` and ``ExpandContainerCommandAndArgs`` (Kubernetes 1.34) step by step:
``envFrom`` first, then ``env`` in order (later entries overriding), ``$(VAR)`` expanded against the
variables declared so far, ``$$`` an escaped ``$``, unknown references left as written, and the same
error texts for a missing Secret, ConfigMap or key, which users read in
``CreateContainerConfigError`` messages. Objects are plain API dicts (camelCase); Secrets and
ConfigMaps come through lookups, so this module needs no cluster and is unit-tested without one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

# name -> data (Secret values already base64-decoded), or None when the object does not exist.
Lookup = Callable[[str], Mapping[str, str] | None]

# What a container image would give a process, minus the image: the node agent has no image, so it
# starts from this and never from its own environment (which holds e.g. its KUBECONFIG).
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class ConfigError(Exception):
    """The environment cannot be built yet (a missing Secret, ConfigMap or key, a bad field path).

    The kubelet leaves the container waiting with reason ``CreateContainerConfigError`` and this
    message, and tries again later: creating the Secret is enough to start the pod.
    """


class StartError(Exception):
    """The container cannot be started at all (here: no ``command``); it ends terminated, exit 128."""


def expand(text: str, variables: Mapping[str, str]) -> str:
    """Expand ``$(NAME)`` references as Kubernetes does (third_party/forked/golang/expansion).

    ``$$`` is a literal ``$``; ``$(UNDEFINED)`` and an unterminated ``$(`` stay as written; a ``$``
    before any other character stays too.
    """
    out: list[str] = []
    checkpoint = 0
    cursor = 0
    while cursor < len(text):
        if text[cursor] == "$" and cursor + 1 < len(text):
            out.append(text[checkpoint:cursor])
            following = text[cursor + 1]
            if following == "$":
                out.append("$")
                advance = 1
            elif following == "(":
                closer = text.find(")", cursor + 2)
                if closer == -1:
                    out.append("$(")
                    advance = 1
                else:
                    name = text[cursor + 2 : closer]
                    out.append(variables.get(name, f"$({name})"))
                    advance = closer - cursor
            else:
                out.append("$" + following)
                advance = 1
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    return "".join(out) + text[checkpoint:]


def format_map(values: Mapping[str, str]) -> str:
    """``metadata.labels`` / ``metadata.annotations`` without a subscript: sorted ``key="value"``
    lines, as the kubelet's fieldpath.FormatMap writes them (Go's strconv.Quote for the value)."""
    return "\n".join(f"{key}={_go_quote(values[key])}" for key in sorted(values))


def _go_quote(value: str) -> str:
    escapes = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}
    return '"' + "".join(escapes.get(ch, ch) for ch in value) + '"'


def field_ref_value(pod: Mapping[str, Any], field_path: str, pod_ip: str, host_ip: str) -> str:
    """The value of a ``valueFrom.fieldRef`` (the kubelet's podFieldSelectorRuntimeValue).

    The IPs are parameters, as in the kubelet: the environment is built before the pod's status
    carries them.
    """
    metadata = pod.get("metadata", {})
    spec = pod.get("spec", {})
    simple = {
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.hostIP": host_ip,
        "status.hostIPs": host_ip,
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
        "metadata.name": metadata.get("name", ""),
        "metadata.namespace": metadata.get("namespace", ""),
        "metadata.uid": metadata.get("uid", ""),
        "metadata.labels": format_map(metadata.get("labels") or {}),
        "metadata.annotations": format_map(metadata.get("annotations") or {}),
    }
    if field_path in simple:
        return str(simple[field_path])
    if field_path.endswith("']") and "['" in field_path:
        path, subscript = field_path[: -len("']")].split("['", 1)
        if path in ("metadata.labels", "metadata.annotations"):
            values = metadata.get(path.split(".")[1]) or {}
            return str(values.get(subscript, ""))
        raise ConfigError(f'fieldPath "{field_path}" does not support subscript')
    raise ConfigError(f"unsupported fieldPath: {field_path}")


def resolve_env(
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    *,
    secret: Lookup,
    config_map: Lookup,
    pod_ip: str,
    host_ip: str,
    services: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The variables a kubelet would set from the container's ``envFrom`` and ``env``.

    ``services``: the Service variables (``api_server_env``); as in the kubelet, ``$(VAR)`` may refer to
    them and the container's own variables override them.
    Raises ConfigError with the kubelet's own message when a non-optional source is missing.
    ``resourceFieldRef`` is refused with a clear message: this node has no resource accounting.
    """
    namespace = pod.get("metadata", {}).get("namespace", "")
    secrets: dict[str, Mapping[str, str] | None] = {}
    config_maps: dict[str, Mapping[str, str] | None] = {}

    def fetch(kind: str, name: str, optional: bool) -> Mapping[str, str] | None:
        cache, lookup = (secrets, secret) if kind == "secret" else (config_maps, config_map)
        if name not in cache:
            cache[name] = lookup(name)
        found = cache[name]
        if found is None and not optional:
            raise ConfigError(f'{kind} "{name}" not found')
        return found

    variables: dict[str, str] = dict(services or {})
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix") or ""
        for field, kind in (("configMapRef", "configmap"), ("secretRef", "secret")):
            ref = source.get(field)
            if ref is not None:
                data = fetch(kind, ref.get("name", ""), bool(ref.get("optional")))
                for key, value in (data or {}).items():
                    variables[prefix + key] = value

    for entry in container.get("env") or []:
        name = entry["name"]
        value = entry.get("value") or ""
        source = entry.get("valueFrom")
        if value:
            value = expand(value, variables)
        elif source is not None:
            if "fieldRef" in source:
                value = field_ref_value(pod, source["fieldRef"]["fieldPath"], pod_ip, host_ip)
            elif "resourceFieldRef" in source:
                resource = source["resourceFieldRef"].get("resource", "")
                raise ConfigError(
                    f"env {name}: resourceFieldRef ({resource}) is not supported by the node agent"
                )
            else:
                found = _key_ref(source, namespace, fetch)
                if found is None:
                    continue  # optional and absent: the variable is not set at all
                value = found
        variables[name] = value
    return variables


def _key_ref(
    source: Mapping[str, Any], namespace: str, fetch: Callable[[str, str, bool], Mapping[str, str] | None]
) -> str | None:
    for field, kind, title in (
        ("secretKeyRef", "secret", "Secret"),
        ("configMapKeyRef", "configmap", "ConfigMap"),
    ):
        ref = source.get(field)
        if ref is None:
            continue
        name, key, optional = ref.get("name", ""), ref["key"], bool(ref.get("optional"))
        data = fetch(kind, name, optional)
        if data is None:
            return None
        if key not in data:
            if optional:
                return None
            raise ConfigError(f"couldn't find key {key} in {title} {namespace}/{name}")
        return data[key]
    raise ConfigError(f"unsupported valueFrom: {sorted(source)}")


def api_server_env(host: str, port: int) -> dict[str, str]:
    """The ``kubernetes`` Service's variables, which the kubelet gives every container and in-cluster
    clients (kopf, the ``kubernetes`` client) read to find the API server. Here they name the API
    server itself: this node has no route to the Service's cluster IP."""
    return {
        "KUBERNETES_SERVICE_HOST": host,
        "KUBERNETES_SERVICE_PORT": str(port),
        "KUBERNETES_SERVICE_PORT_HTTPS": str(port),
        "KUBERNETES_PORT": f"tcp://{host}:{port}",
    }


def command_line(container: Mapping[str, Any], variables: Mapping[str, str]) -> list[str]:
    """``command`` + ``args`` with ``$(VAR)`` expanded against the container's declared variables.

    There is no image here, hence no entrypoint to fall back on: a container without ``command``
    cannot start, and says why.
    """
    command: Sequence[str] = container.get("command") or []
    args: Sequence[str] = container.get("args") or []
    if not command:
        raise StartError(
            f"container {container.get('name', '')!r} has no command: the node agent does not pull "
            f"images, so the image's entrypoint is unknown; set command (and args) explicitly"
        )
    return [expand(part, variables) for part in [*command, *args]]


def process_env(variables: Mapping[str, str], *, path: str, home: str, hostname: str) -> dict[str, str]:
    """What the process sees: a minimal base (what a runtime and image would provide) overridden by
    the spec's variables. Nothing of the node agent's own environment leaks in."""
    base = {"PATH": path, "HOME": home, "HOSTNAME": hostname, "LANG": "C.UTF-8"}
    return {**base, **variables}


def pod_hostname(pod: Mapping[str, Any]) -> str:
    """``spec.hostname`` when set (an Indexed Job sets ``<job>-<index>``), else the pod's name,
    truncated to a DNS label as the kubelet does."""
    name = pod.get("spec", {}).get("hostname") or pod.get("metadata", {}).get("name", "")
    return str(name)[:63].rstrip("-.")
