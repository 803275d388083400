"""Manual controls as annotations, so nothing a person does drifts from Git (pure).

``kubectl annotate h9m NAME migration.hal9.ai/promote=alice`` (the kubectl plugin writes the same):
the value names the actor. kopf's own bookkeeping lives under another prefix
(``kopf.migration.hal9.ai/``), so these names cannot clash with it. Each control is acted on once,
recorded in history with its actor, then removed; ``status.controls.consumed`` remembers the value
acted on until the annotation is seen gone, so a removal lost to a crash never acts twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from .models import GROUP


class Verb(StrEnum):
    RETRY = "retry"  # leave a Stalled state (a halt); restart the deadline clock
    RESUME = "resume"  # undo a pause annotation
    PAUSE = "pause"  # hold where the migration is
    ABORT = "abort"  # all traffic to flat now, and hold until retry or a new spec
    PROMOTE = "promote"  # skip the current wait once


# The order controls set together are applied in: abort after retry and pause after resume, so the
# safer one wins; promote last, so it sees the outcome of the others.
ORDER = (Verb.RETRY, Verb.RESUME, Verb.PAUSE, Verb.ABORT, Verb.PROMOTE)


def annotation(verb: Verb) -> str:
    return f"{GROUP}/{verb.value}"


@dataclass(frozen=True)
class Control:
    verb: Verb
    value: str  # the annotation's value as set

    @property
    def actor(self) -> str:
        return self.value.strip() or "unknown"

    @property
    def token(self) -> str:
        return f"{self.verb.value}={self.value}"


def read(annotations: Mapping[str, str] | None) -> list[Control]:
    """The control annotations present, in the order they are applied."""
    annotations = annotations or {}
    return [
        Control(verb, str(annotations[annotation(verb)])) for verb in ORDER if annotation(verb) in annotations
    ]
