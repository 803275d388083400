"""Prometheus over its HTTP API: instant queries (``/api/v1/query``), with a timeout and optional
bearer-token or basic authentication and a CA bundle.

The standard library's urllib is enough for one GET per check every interval; a client library
would add a dependency for nothing. Every failure becomes a reason in the Sample, so the analysis
reads Inconclusive and says why; a reason never contains a credential.
"""

from __future__ import annotations

import base64
import json
import math
import ssl
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from .base import Credentials, Sample

REASON_LIMIT = 300  # characters of a Prometheus error message kept in a reason


class PrometheusProvider:
    def __init__(self, address: str, timeout: float, credentials: Credentials | None = None) -> None:
        self.address = address.rstrip("/")
        self.timeout = timeout
        self.credentials = credentials or Credentials()
        self._context = (
            ssl.create_default_context(cadata=self.credentials.ca_pem) if self.credentials.ca_pem else None
        )

    @property
    def name(self) -> str:
        """For messages: the address without any user:password@ in it (messages reach status)."""
        parts = urllib.parse.urlsplit(self.address)
        host = parts.netloc.rpartition("@")[2]
        return f"Prometheus at {urllib.parse.urlunsplit(parts._replace(netloc=host))}"

    def query(self, query: str) -> Sample:
        if self.credentials.problem:
            return Sample(None, f"{self.name}: {self.credentials.problem}", unreachable=True)
        params = urllib.parse.urlencode({"query": query, "timeout": f"{self.timeout:g}s"})
        request = urllib.request.Request(  # noqa: S310 (the address is checked to be http(s) at admission)
            f"{self.address}/api/v1/query?{params}", headers=self._headers()
        )
        try:
            with urllib.request.urlopen(  # noqa: S310
                request, timeout=self.timeout, context=self._context
            ) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as error:
            return self._http_error(error)
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            why = getattr(error, "reason", error)
            return Sample(None, f"{self.name} is unreachable: {why}", unreachable=True)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return Sample(None, f"{self.name} answered something that is not JSON")
        return _value(body)

    def _headers(self) -> dict[str, str]:
        c = self.credentials
        if c.bearer_token:
            return {"Authorization": f"Bearer {c.bearer_token}"}
        if c.username is not None and c.password is not None:
            pair = base64.b64encode(f"{c.username}:{c.password}".encode()).decode()
            return {"Authorization": f"Basic {pair}"}
        return {}

    def _http_error(self, error: urllib.error.HTTPError) -> Sample:
        if error.code in (401, 403):
            return Sample(None, f"{self.name} refused the credentials (HTTP {error.code})", unreachable=True)
        try:
            detail = json.loads(error.read())
            message = f"{detail.get('errorType', 'error')}: {detail.get('error', '')}"
        except (json.JSONDecodeError, UnicodeDecodeError, OSError):
            message = f"HTTP {error.code}"
        return Sample(None, f"{self.name} rejected the query: {message[:REASON_LIMIT]}")


def _value(body: Any) -> Sample:
    """The single number in an instant-query answer, or why there is none."""
    if not isinstance(body, dict) or body.get("status") != "success":
        error = body.get("error", "") if isinstance(body, dict) else ""
        return Sample(None, f"the query failed: {str(error)[:REASON_LIMIT]}")
    data = body.get("data") or {}
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar":
        return _number(result)
    if kind != "vector" or not isinstance(result, list):
        return Sample(None, f"the query returned a {kind}, not one number; use an instant vector")
    if not result:
        return Sample(None, "the query returned no series")
    if len(result) > 1:
        return Sample(None, f"the query returned {len(result)} series, not one; aggregate it (sum, max ...)")
    return _number(result[0].get("value"))


def _number(pair: Any) -> Sample:
    try:
        value = float(pair[1])
    except (TypeError, ValueError, IndexError):
        return Sample(None, "the query's value is not a number")
    if math.isinf(value):
        return Sample(None, "the query returned infinity (for a ratio: a zero denominator)")
    return Sample.of(value)
