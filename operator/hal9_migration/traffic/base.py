"""The traffic-router seam: what the operator manages on a route object, and one Protocol for it.

Routers are pure: they read routing from a route object (a dict as the API server returns it) and
render a new object with the operator's part changed. ``kube.py`` does the reading and the writing
(a replace carrying the resourceVersion read, so a concurrent editor causes a retry, never a lost
edit). Everything a router does not manage (other routes, matches, retries, timeouts, header filters,
labels, annotations) must come out of ``set_routes`` exactly as it went in.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ..models import GROUP, TargetingRule

# The operator's memory on the route object: which migration drives it and the position it wrote
# last, in the same write as the weights (so a restart can never see weights without their position).
MEMORY_ANNOTATION = f"{GROUP}/position"
# Names of the match routes/rules the operator adds for targeting rules start with this.
TARGETING_PREFIX = "hal9-targeting-"


@dataclass(frozen=True)
class Backends:
    """The two Services a route object splits traffic between (in the migration's namespace)."""

    namespace: str
    flat: str
    hierarchical: str
    # The migration's shadow proxy Service: while it is the detour, it stands in flat's place (it
    # forwards every request to flat and copies it to hierarchical), so a router accepts it there.
    proxy: str | None = None


@dataclass(frozen=True)
class Routing:
    """What the operator manages on a route object."""

    weight: int  # hierarchical share of the weighted traffic, 0..100; flat gets the rest
    mirror: int = 0  # percent of requests mirrored to hierarchical; 0 removes the operator's mirror
    # Header-match routes placed before the weighted ones, in order; None leaves them as they are.
    targeting: tuple[TargetingRule, ...] | None = ()
    # A Service that takes flat's place in the routes (the shadow proxy); None: flat itself.
    detour: str | None = None


@dataclass(frozen=True)
class ObservedRouting:
    """Routing as found on a route object."""

    weight: int | None  # hierarchical percent; None when the managed routes disagree with each other
    mirror: int | None  # mirrored percent (0 when none); None when the managed routes disagree
    # Full names (prefix included) of the operator's targeting routes/rules on the object, in order.
    targeting: tuple[str, ...]
    detour: str | None = None  # the shadow proxy Service, when it stands in flat's place


class RouteProblem(Exception):
    """The route object cannot carry this migration's routing; ``reason`` is the Stalled reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason  # RouteNotFound | RouteMisconfigured | UnsupportedByRouter
        self.message = message


class Router(Protocol):
    """One traffic router (Flagger's router interface, split into pure halves)."""

    kind: str  # e.g. "VirtualService", for messages
    group: str
    version: str
    plural: str
    name: str  # the route object's name, in the migration's namespace
    backends: Backends

    def unsupported(self, routing: Routing) -> str | None:
        """Why this router cannot carry ``routing`` at all (e.g. SMI and mirroring), or None."""

    def read_routes(self, obj: Mapping[str, Any]) -> ObservedRouting:
        """The routing the object holds now. Raises RouteProblem when it cannot carry ours."""

    def set_routes(self, obj: Mapping[str, Any], routing: Routing) -> dict[str, Any]:
        """A copy of ``obj`` carrying ``routing``; nothing the operator does not manage changes."""


def read_memory(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    """The operator's position annotation on a route object, or None when absent or unreadable."""
    text = (obj.get("metadata") or {}).get("annotations", {}).get(MEMORY_ANNOTATION)
    if not isinstance(text, str):
        return None
    try:
        memory = json.loads(text)
    except ValueError:
        return None
    return memory if isinstance(memory, dict) else None


def with_memory(obj: Mapping[str, Any], memory: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``obj`` with the position annotation set (compact JSON, stable key order)."""
    out = copy.deepcopy(dict(obj))
    annotations = out.setdefault("metadata", {}).setdefault("annotations", {})
    annotations[MEMORY_ANNOTATION] = json.dumps(dict(memory), sort_keys=True, separators=(",", ":"))
    return out


def percent(hierarchical: float, flat: float) -> int:
    """Hierarchical share in whole percent of two relative weights (both 0: nothing to hierarchical)."""
    total = hierarchical + flat
    return round(100 * hierarchical / total) if total > 0 else 0
