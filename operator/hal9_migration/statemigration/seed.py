"""Source rows that look like HAL9's neuron state (DESIGN §5), for tests and the benchmark.

``generate`` is deterministic for a seed and fast enough for a million rows: the floats of weights,
biases and connection weights are slices of a pool drawn once per call, whose JSON spellings are
computed once too, so a row costs a few joins rather than dozens of float-to-text conversions.

What the rows cover, all of it within the first few hundred rows and then over and over:

- every neuron type of the layer rule, in lower case and in other cases, and unknown types (so the
  behaviour rule decides);
- the behaviour rule's edge values: avg_response_time exactly 9.999, 10, 199.999 and 200 ms, and
  connection_count exactly 10 and 11, each met with unknown types;
- momentum absent (NULL) and present (including 0.0, and 0.9, the default);
- connection types forward/backward/lateral in several cases, and unknown ones;
- floats that are easy to lose: -0.0, subnormals, the largest and smallest normals, integers written
  without a decimal point;
- memory and context with non-ASCII text, emoji (also joined sequences), right-to-left scripts,
  quotes, backslashes and newlines; context with and without "focus", focus of every JSON kind;
- connection targets that are ids of earlier rows, and some that point nowhere;
- created_at increasing by one second per row from ``start``: later rows are newer.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Final

__all__ = ["CONNECTION_COUNT_EDGES", "NEURON_TYPES", "RESPONSE_TIME_EDGES", "generate"]

DEFAULT_START: Final = datetime(2026, 1, 1, tzinfo=UTC)

# Known types (the layer rule's names), some spelled in other cases, and unknown ones. 19 entries:
# prime to the 8-row response-time cycle and the 5-row connection-count cycle below, so every
# (type, edge) pair comes round within 19 * 8 * 5 = 760 rows.
NEURON_TYPES: Final = (
    "reflex",
    "reactive",
    "executor",
    "implementer",
    "coordinator",
    "manager",
    "planner",
    "strategist",
    "visionary",
    "architect",
    "Reflex",
    "PLANNER",
    "Architect",
    "sensor",
    "interneuron",
    "memory_cell",
    "reflexive",
    "gate",
    "",
)
RESPONSE_TIME_EDGES: Final = (9.999, 10.0, 199.999, 200.0)  # rows i % 8 == 0..3; others drawn
CONNECTION_COUNT_EDGES: Final = (10, 11)  # rows i % 5 == 0, 1; others drawn

_CONN_TYPES: Final = (
    "forward",
    "forward",
    "forward",
    "backward",
    "backward",
    "lateral",
    "lateral",
    "Forward",
    "BACKWARD",
    "Lateral",
    "inhibitory",
    "recurrent",
    "",
)
_CONN_TYPES_JSON: Final = tuple(json.dumps(t) for t in _CONN_TYPES)

_TEXTS: Final = (
    "ok",
    "naïve café résumé",
    "Grüße aus Köln",
    "東京の天気は晴れ",
    "신경망 상태",
    "🧠✨ spark",
    "👩‍💻 pair-programming 🏳️‍🌈",
    "مرحبا بالعالم",
    "שלום עולם",
    "Ελληνικά και русский",
    'quote " and backslash \\ and tab\t',
    "line one\nline two",
    "e\u0301 (combining accent)",
    "",
)
_TASKS: Final = ("route", "summarise", "plan", "reflex-arc", "recall", "وزن", "学習")
_SPECIAL_FLOATS: Final = (
    "-0.0",
    "0.0",
    "5e-324",  # smallest subnormal
    "2.2250738585072014e-308",  # smallest normal
    "-1.7976931348623157e+308",  # most negative finite
    "1e-300",
    "123456789.125",
    "1",  # integers where a float is meant
    "-3",
    "0.1",
)
_POOL_SIZE: Final = 16_384
_RING_SIZE: Final = 4096

_DUMPS: Final = json.JSONEncoder(ensure_ascii=False).encode


def _float_pool(rng: random.Random, size: int) -> list[str]:
    """JSON spellings of mostly small Gaussian floats, with a special value every 61st place."""
    pool = [repr(rng.gauss(0.0, 0.5)) for _ in range(size)]
    for n, i in enumerate(range(0, size, 61)):
        pool[i] = _SPECIAL_FLOATS[n % len(_SPECIAL_FLOATS)]
    return pool


def _pick(rng: random.Random, items: tuple[str, ...]) -> str:
    return items[int(rng.random() * len(items))]


def _memory(rng: random.Random, i: int) -> dict[str, Any]:
    kind = i % 6
    if kind == 0:
        return {}
    memory: dict[str, Any] = {
        "last_signal": _pick(rng, _TEXTS),
        "counter": i,
        "trace": [rng.random(), -0.0 if kind == 3 else rng.random(), 1e-310],
    }
    if kind >= 4:
        memory["episodic"] = {
            "😀": _pick(rng, _TEXTS),
            "ключ": [True, False, None, 2**63],
            "nested": {"depth": {"deeper": "🪐"}},
        }
    return memory


def _context(rng: random.Random, i: int) -> dict[str, Any]:
    context: dict[str, Any] = {"task": _pick(rng, _TASKS), "priority": i % 4}
    kind = i % 7
    if kind == 0:
        return context  # no focus at all
    if kind == 1:
        context["focus"] = None
    elif kind == 2:
        context["focus"] = {"topic": _pick(rng, _TEXTS), "weight": rng.random()}
    elif kind == 3:
        context["focus"] = [1, "二", 3.5]
    elif kind == 4:
        context["focus"] = rng.random()
    else:
        context["focus"] = _pick(rng, _TEXTS)
    return context


def _utc_naive(start: datetime | None) -> datetime:
    if start is None:
        start = DEFAULT_START
    if start.tzinfo is not None:
        start = start.astimezone(UTC)
    return start.replace(tzinfo=None)


def generate(
    count: int,
    seed: int = 0,
    weights: int = 64,
    connections: int = 8,
    start: datetime | None = None,
) -> Iterator[tuple[Any, ...]]:
    """``count`` source rows in FLAT_COLUMNS order, JSON columns as JSON text; the same for a seed.

    Each row has ``weights`` weights, ``max(1, weights // 8)`` biases and ``connections`` connections.
    ``connection_count`` is the behaviour figure of DESIGN §5's layer rule and is drawn on its own (the
    edge values 10 and 11 must appear whatever ``connections`` is). ``start`` defaults to
    2026-01-01T00:00:00Z; a naive ``start`` is taken as UTC.
    """
    if count < 0 or weights < 0 or connections < 0:
        raise ValueError("count, weights and connections must not be negative")
    rng = random.Random(seed)  # noqa: S311 - test data, reproducible by design
    biases = max(1, weights // 8)
    pool = _float_pool(rng, max(_POOL_SIZE, 2 * (weights + biases + connections)))
    span = len(pool) - max(weights, biases, connections)
    ring: list[str] = []
    created = _utc_naive(start)
    second = timedelta(seconds=1)
    getrandbits = rng.getrandbits
    randrange = rng.randrange  # for the few draws outside the hot path
    rand = rng.random
    n_types = len(NEURON_TYPES)
    n_conn_types = len(_CONN_TYPES)

    for i in range(count):
        neuron_id = str(uuid.UUID(int=getrandbits(128), version=4))

        # int(rand() * n), not randrange(n): a fraction of the cost, for a bias of about n / 2**53.
        offset = int(rand() * span)
        weights_json = "[" + ",".join(pool[offset : offset + weights]) + "]"
        offset = int(rand() * span)
        biases_json = "[" + ",".join(pool[offset : offset + biases]) + "]"

        parts = []
        offset = int(rand() * span)
        n_ring = len(ring)
        for k in range(connections):
            if n_ring and k % 8 != 7:  # mostly earlier neurons; every 8th points at no neuron
                target = ring[int(rand() * n_ring)]
            else:
                target = str(uuid.UUID(int=getrandbits(128), version=4))
            parts.append(
                f'{{"target":"{target}","weight":{pool[offset + k]},'
                f'"conn_type":{_CONN_TYPES_JSON[int(rand() * n_conn_types)]}}}'
            )
        connections_json = "[" + ",".join(parts) + "]"

        edge = i % 8
        avg_response_time = RESPONSE_TIME_EDGES[edge] if edge < 4 else round(rng.lognormvariate(4.0, 1.6), 3)
        cc_edge = i % 5
        connection_count = CONNECTION_COUNT_EDGES[cc_edge] if cc_edge < 2 else randrange(0, 25)

        momentum_kind = i % 4
        if momentum_kind == 1:
            momentum: float | None = None
        elif momentum_kind == 2:
            momentum = (0.9, 0.0, 0.95, 0.5)[(i // 4) % 4]
        else:
            momentum = rand()

        activation = -0.0 if i % 97 == 0 else rand()
        learning_rate = 10.0 ** rng.uniform(-5.0, -1.0)

        yield (
            neuron_id,
            NEURON_TYPES[i % n_types],
            activation,
            weights_json,
            biases_json,
            learning_rate,
            momentum,
            connections_json,
            _DUMPS(_memory(rng, i)),
            _DUMPS(_context(rng, i)),
            avg_response_time,
            connection_count,
            rand() < 0.5,
            created.isoformat() + "Z",
        )

        if len(ring) < _RING_SIZE:
            ring.append(neuron_id)
        else:
            ring[i % _RING_SIZE] = neuron_id
        created += second
