"""Helpers the routers share, so each rule (host matching, what a copy keeps) is written once."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from .base import TARGETING_PREFIX, Backends, RouteProblem, Routing

T = TypeVar("T")


def check_routing(routing: Routing, backends: Backends) -> None:
    """Refuse a Routing no route object may carry: it can only come from a bug in the caller."""
    if not 0 <= routing.weight <= 100 or not 0 <= routing.mirror <= 100:
        raise ValueError(f"weight and mirror must lie in 0..100, got {routing.weight} and {routing.mirror}")
    if routing.detour is not None and routing.detour != backends.proxy:
        raise ValueError(f"detour {routing.detour!r} is not this migration's shadow proxy {backends.proxy!r}")


def flat_slot(backends: Backends) -> tuple[str, ...]:
    """The Services that may stand in flat's place: flat, and the shadow proxy when there is one."""
    return (backends.flat,) if backends.proxy is None else (backends.flat, backends.proxy)


def detour_of(service: str, backends: Backends) -> str | None:
    """The detour a flat-slot entry naming ``service`` means: the proxy, or None for flat itself."""
    return service if backends.proxy is not None and service == backends.proxy else None


def is_targeting(entry: Mapping[str, Any]) -> bool:
    """Whether a route/rule is one of the operator's targeting entries (rebuilt, never managed)."""
    name = entry.get("name")
    return isinstance(name, str) and name.startswith(TARGETING_PREFIX)


def host_is_service(host: Any, service: str, namespace: str) -> bool:
    """Whether an Istio host names ``service``: ``name``, ``name.ns``, ``name.ns.svc[.<domain>]``."""
    if not isinstance(host, str):
        return False
    full = f"{service}.{namespace}.svc"
    return host in (service, f"{service}.{namespace}", full) or (
        host.startswith(full + ".") and len(host) > len(full) + 1
    )


def copy_without(entry: Mapping[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    """A deep copy of ``entry`` without ``keys``: what a targeting entry inherits from its route."""
    dropped = set(keys)
    return {k: copy.deepcopy(v) for k, v in entry.items() if k not in dropped}


def agreed(values: Iterable[T]) -> T | None:
    """The one value every managed route holds, or None when they disagree (or there are none)."""
    distinct = set(values)
    return distinct.pop() if len(distinct) == 1 else None


def describe(entry: Mapping[str, Any], field: str, index: int) -> str:
    """How a message names a route/rule: its name when it has one, else its position."""
    name = entry.get("name")
    return f"{field} {name!r}" if isinstance(name, str) and name else f"unnamed {field}[{index}]"


def list_at(entry: Any, key: str) -> list[Any]:
    """``entry[key]`` as a list; missing or malformed reads as empty (and so reports as misconfigured)."""
    value = entry.get(key) if isinstance(entry, Mapping) else None
    return value if isinstance(value, list) else []


def spec_list(obj: Mapping[str, Any], key: str) -> list[Any]:
    """``obj.spec[key]`` as a list (the very list inside ``obj``, so edits land in it)."""
    return list_at(obj.get("spec"), key)


def weight_of(entry: Mapping[str, Any], default: float) -> float:
    """A destination's relative weight; ``default`` is what the router's API means by none."""
    weight = entry.get("weight")
    return weight if isinstance(weight, int | float) and not isinstance(weight, bool) else default


def select(
    entries: list[Any],
    names: tuple[str, ...],
    touches_ours: Callable[[dict[str, Any]], bool],
    where: str,
    what: str,
) -> list[tuple[int, dict[str, Any]]]:
    """(index, entry) of the routes/rules the operator manages: the named ones (each must exist), or
    with no names every one that sends to either Service; never the operator's own targeting ones."""
    candidates = [(i, e) for i, e in enumerate(entries) if isinstance(e, dict) and not is_targeting(e)]
    if not names:
        return [(i, e) for i, e in candidates if touches_ours(e)]
    present = {e.get("name") for _, e in candidates}
    missing = [name for name in names if name not in present]
    if missing:
        raise RouteProblem("RouteNotFound", f"{where} has no {what} named {', '.join(map(repr, missing))}")
    return [(i, e) for i, e in candidates if e.get("name") in names]
