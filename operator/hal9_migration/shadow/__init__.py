"""The Shadow phase's response-diffing proxy (``hal9-migration shadow-proxy``).

In Shadow both systems see every request: flat answers the caller, hierarchical gets a copy, and the two
answers are compared with HAL9's rule (DESIGN §2). A mesh mirror throws the mirrored answer away, so
this proxy stands in front of both systems instead and exports the parity the Shadow gate reads.

- ``compare``: HAL9's rule (pure).
- ``samples``: the bounded, redacted ring of divergent pairs served on ``/divergences`` (pure).
- ``config``: the command line, validated into a ``ProxyConfig`` (pure).
- ``schedule``: which requests get a copy under ``--shadow-percent`` (pure).
- ``metrics``: the ``hal9_shadow_*`` Prometheus families.
- ``wire``: requests as parsed from callers and re-encoded for each upstream.
- ``upstream``: keep-alive connection pools to flat and hierarchical.
- ``server``: the proxy itself (caller connections, the shadow task, graceful stop).
- ``admin``: ``/metrics``, ``/divergences``, ``/healthz`` on their own port.

This module imports nothing, so the operator can import the pure parts without uvloop or httptools.
"""
