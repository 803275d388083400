"""A provider that answers from a table: the no-op backend and the pure core's test double.

An empty table answers every query with "no data", which is what an analysis without a reachable
backend must read as (Inconclusive, never a pass).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from .base import Sample

Answer = float | None | Callable[[str], float | None]


class NoopProvider:
    """Answers a query from ``values``, looked up by the first key the query contains."""

    def __init__(
        self,
        values: Mapping[str, Answer] | None = None,
        *,
        reachable: bool = True,
        missing: str = "the query returned no series",
    ) -> None:
        self.values: dict[str, Answer] = dict(values or {})
        self.reachable = reachable
        self.missing = missing
        self.queries: list[str] = []  # every query asked, in order

    @property
    def name(self) -> str:
        return "the no-op metrics provider"

    def query(self, query: str) -> Sample:
        self.queries.append(query)
        if not self.reachable:
            return Sample(None, f"{self.name} is unreachable", unreachable=True)
        for key, answer in self.values.items():
            if key in query:
                value = answer(query) if callable(answer) else answer
                return Sample(None, self.missing) if value is None else Sample.of(value)
        return Sample(None, self.missing)
