"""The health score of DESIGN §2 (pure).

``1 - min(err/0.05 * 0.3, 0.3) - clamp((cpu-50)/50, 0, 0.2) - clamp((mem-50)/50, 0, 0.2)
- clamp((0.95-parity)/0.95 * 3, 0, 0.3)``

The hierarchical error rate is the one input the score cannot do without: with no error rate there
is no score (and a score trigger cannot fire or clear). CPU, memory and output parity that were not
measured cost nothing, and the reason says which ones are missing, so a reader never takes a
partial score for a whole one.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Health:
    score: float | None
    reason: str  # what was not measured; empty when every input was


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


def score(
    error_rate: float | None,
    cpu_percent: float | None,
    memory_percent: float | None,
    parity: float | None,
) -> Health:
    """The score in 0..1 (rounded to 4 places), or None without an error rate."""
    missing = [
        name
        for name, value in (("cpu", cpu_percent), ("memory", memory_percent), ("output parity", parity))
        if value is None
    ]
    if error_rate is None:
        return Health(None, "no score: the hierarchical error rate was not measured")
    total = 1.0 - min(error_rate / 0.05 * 0.3, 0.3)
    if cpu_percent is not None:
        total -= _clamp((cpu_percent - 50) / 50, 0, 0.2)
    if memory_percent is not None:
        total -= _clamp((memory_percent - 50) / 50, 0, 0.2)
    if parity is not None:
        total -= _clamp((0.95 - parity) / 0.95 * 3, 0, 0.3)
    reason = f"not measured, so not counted: {', '.join(missing)}" if missing else ""
    return Health(round(_clamp(total, 0.0, 1.0), 4), reason)
