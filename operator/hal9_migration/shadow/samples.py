"""The last N divergent pairs, redacted, for ``GET /divergences`` (pure: the caller passes the time).

A parity below the gate says *that* hierarchical differs; a person deciding what to fix needs to see
*how*. Traffic carries credentials and personal data, so a pair is redacted when it is recorded, not
when it is served: what is held in memory is already safe to show. Configured headers (credentials and
cookies by default) and configured JSON fields (dotted paths, through lists as in ``compare``) become
``"<redacted>"``. A body that is not JSON cannot be redacted field by field and is kept as text (only
truncated). Bodies are truncated to a bound after redaction, so the ring's memory is bounded by
``capacity x (request + primary + shadow bound)`` whatever the traffic.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .compare import FieldPath

REDACTED = "<redacted>"
DEFAULT_REDACTED_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
DEFAULT_BODY_LIMIT = 4096


@dataclass(frozen=True)
class Redaction:
    """What a sample must not show: header names (any case) and JSON field paths, and how many bytes
    of each body it keeps."""

    headers: frozenset[str] = DEFAULT_REDACTED_HEADERS
    fields: tuple[FieldPath, ...] = ()
    body_limit: int = DEFAULT_BODY_LIMIT

    @classmethod
    def with_extra(
        cls, headers: Iterable[str], fields: Iterable[FieldPath], body_limit: int = DEFAULT_BODY_LIMIT
    ) -> Redaction:
        """The defaults plus the command line's --redact-header and --redact-field."""
        names = DEFAULT_REDACTED_HEADERS | {name.strip().lower() for name in headers}
        return cls(frozenset(names), tuple(fields), body_limit)

    def header_pairs(self, headers: Iterable[tuple[bytes, bytes]]) -> list[list[str]]:
        """``[[name, value], ...]`` in their order (a header may repeat), redacted by name."""
        pairs = []
        for raw_name, raw_value in headers:
            name = raw_name.decode("latin-1")
            value = REDACTED if name.lower() in self.headers else raw_value.decode("latin-1")
            pairs.append([name, value])
        return pairs

    def body(self, raw: bytes) -> dict[str, Any]:
        """``{"text": ..., "truncated": bool}``: a JSON body re-serialized with its fields redacted,
        any other body as UTF-8 text (undecodable bytes replaced)."""
        try:
            parsed = json.loads(raw)
        except (ValueError, RecursionError):
            text = raw.decode("utf-8", errors="replace")
        else:
            for path in self.fields:
                _redact(parsed, path)
            text = json.dumps(parsed, ensure_ascii=False, separators=(",", ":"))
        encoded = text.encode()
        if len(encoded) <= self.body_limit:
            return {"text": text, "truncated": False}
        return {"text": encoded[: self.body_limit].decode("utf-8", errors="ignore"), "truncated": True}


def _redact(value: Any, path: Sequence[str]) -> None:
    if isinstance(value, list):
        for item in value:
            _redact(item, path)
    elif isinstance(value, dict) and path[0] in value:
        if len(path) == 1:
            value[path[0]] = REDACTED
        else:
            _redact(value[path[0]], path[1:])


@dataclass(frozen=True)
class Exchange:
    """One side's answer as the proxy saw it: a status and body, or the failure that stood in for them
    (``"timeout"``, ``"reset"``, ...)."""

    status: int | None
    body: bytes
    failure: str | None = None


class DivergenceSamples:
    """A ring of the last ``capacity`` divergent pairs (older ones fall off), newest served first."""

    def __init__(self, capacity: int, redaction: Redaction) -> None:
        if capacity < 0:
            raise ValueError("capacity must be >= 0")
        self.redaction = redaction
        self._ring: deque[dict[str, Any]] = deque(maxlen=capacity)
        self.recorded = 0  # since start, including those that fell off

    def record(
        self,
        *,
        method: bytes,
        target: bytes,
        request_headers: Iterable[tuple[bytes, bytes]],
        request_body: bytes,
        primary: Exchange,
        shadow: Exchange,
        kind: str,
        score: float,
        at: float,
    ) -> None:
        """Keep one divergent pair (redacted now: nothing unredacted stays in the ring)."""
        self.recorded += 1
        if self._ring.maxlen == 0:
            return
        redaction = self.redaction
        self._ring.append(
            {
                "time": at,
                "kind": kind,
                "score": score,
                "request": {
                    "method": method.decode("latin-1"),
                    "path": target.decode("latin-1"),
                    "headers": redaction.header_pairs(request_headers),
                    "body": redaction.body(request_body),
                },
                "primary": self._exchange(primary),
                "shadow": self._exchange(shadow),
            }
        )

    def _exchange(self, exchange: Exchange) -> dict[str, Any]:
        if exchange.failure is not None:
            return {"status": None, "failure": exchange.failure, "body": None}
        return {"status": exchange.status, "failure": None, "body": self.redaction.body(exchange.body)}

    @property
    def capacity(self) -> int:
        return self._ring.maxlen or 0

    def newest_first(self) -> list[dict[str, Any]]:
        return list(reversed(self._ring))

    def __len__(self) -> int:
        return len(self._ring)
