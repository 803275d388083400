"""The seam between analysis and a metrics backend: one small Protocol (Flagger's providers shape)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Sample:
    """What one query gave: a number, or the reason there is none (never both)."""

    value: float | None
    reason: str = ""
    unreachable: bool = False  # the backend did not answer at all: the other queries need not be tried

    @classmethod
    def of(cls, value: float) -> Sample:
        if math.isnan(value):
            return cls(None, "the query returned NaN (for a ratio: no requests in the window)")
        return cls(value)


class MetricProvider(Protocol):
    """A metrics backend that answers instant queries."""

    @property
    def name(self) -> str:
        """What to call the backend in messages ("Prometheus at http://...")."""

    def query(self, query: str) -> Sample:
        """The query's single value now; any other outcome is a Sample without a value and a reason."""


@dataclass(frozen=True)
class Credentials:
    """What the edge read from the provider's Secrets (never logged, never in status)."""

    bearer_token: str | None = None
    username: str | None = None
    password: str | None = None
    ca_pem: str | None = None
    problem: str | None = None  # a Secret or key that could not be read: every query is Inconclusive
