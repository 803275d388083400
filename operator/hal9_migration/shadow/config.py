"""The shadow proxy's command line, validated into a ``ProxyConfig`` (pure).

The operator runs the proxy as a pod with these arguments, so a mistake must show as a crash-looping
pod with one clear line in its log, not as a proxy that half works: every value is checked here, and
``ConfigError`` carries the message ``cli.py`` prints before exiting with 2. Options are read as text
and converted here (not by argparse's ``type=``), so every bad value gets the same one-line message.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from .compare import CompareRules, FieldPath, parse_path
from .samples import Redaction


class ConfigError(ValueError):
    """A bad argument; the message says which and why, on one line."""


@dataclass(frozen=True)
class UpstreamAddress:
    """Where a system answers: ``http://host:port[/prefix]``. The host is resolved on every new
    connection, so a Service's DNS name follows the Service."""

    host: str
    port: int
    prefix: str  # "" or "/something" (no trailing slash): prepended to every request's path

    @property
    def authority(self) -> str:
        """The Host header the upstream gets (as a client addressing it directly would send)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == 80 else f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"http://{self.authority}{self.prefix}"


@dataclass(frozen=True)
class ProxyConfig:
    flat: UpstreamAddress
    hierarchical: UpstreamAddress
    listen: tuple[str, int]
    admin: tuple[str, int]
    migration: str
    rules: CompareRules
    redaction: Redaction
    shadow_timeout: float
    primary_timeout: float
    max_in_flight: int
    samples: int
    shadow_percent: float = 100.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``shadow-proxy`` options (all read as text; ``from_arguments`` converts and checks them)."""
    parser.add_argument("--flat", metavar="URL", help="the primary system, http://host:port[/prefix]")
    parser.add_argument("--hierarchical", metavar="URL", help="the shadow system, http://host:port[/prefix]")
    parser.add_argument(
        "--listen", metavar="HOST:PORT", default="0.0.0.0:8080", help="(default: %(default)s)"
    )
    parser.add_argument(
        "--admin",
        metavar="HOST:PORT",
        default="0.0.0.0:9090",
        help="/metrics, /divergences, /healthz (default: %(default)s)",
    )
    parser.add_argument("--migration", default="", help="the `migration` label of every metric")
    parser.add_argument(
        "--ignore-field",
        metavar="PATH",
        action="append",
        default=[],
        help="JSON field left out of the comparison, dotted (meta.requestId); repeatable",
    )
    parser.add_argument("--confidence-field", metavar="PATH", default="confidence")
    parser.add_argument("--confidence-tolerance", metavar="F", default="0.1")
    parser.add_argument(
        "--redact-header",
        metavar="NAME",
        action="append",
        default=[],
        help="also redacted in /divergences (besides authorization, proxy-authorization, cookie,"
        " set-cookie); repeatable",
    )
    parser.add_argument(
        "--redact-field",
        metavar="PATH",
        action="append",
        default=[],
        help="JSON field redacted in /divergences bodies, dotted; repeatable",
    )
    parser.add_argument("--shadow-timeout", metavar="SECONDS", default="1.0")
    parser.add_argument("--primary-timeout", metavar="SECONDS", default="30")
    parser.add_argument("--max-in-flight", metavar="N", default="256", help="shadow requests; beyond: shed")
    parser.add_argument("--samples", metavar="N", default="100", help="divergent pairs kept")
    parser.add_argument(
        "--shadow-percent",
        metavar="P",
        default="100",
        help="share of requests copied to hierarchical, 0-100, spread evenly (default: %(default)s)",
    )


def from_arguments(args: argparse.Namespace) -> ProxyConfig:
    """The checked configuration, or ConfigError naming the first bad option."""
    if not args.flat:
        raise ConfigError("--flat URL is required")
    if not args.hierarchical:
        raise ConfigError("--hierarchical URL is required")
    return ProxyConfig(
        flat=parse_upstream("--flat", args.flat),
        hierarchical=parse_upstream("--hierarchical", args.hierarchical),
        listen=parse_address("--listen", args.listen),
        admin=parse_address("--admin", args.admin),
        migration=args.migration,
        rules=CompareRules(
            ignored_fields=_paths("--ignore-field", args.ignore_field),
            confidence_field=_paths("--confidence-field", [args.confidence_field])[0],
            confidence_tolerance=_number("--confidence-tolerance", args.confidence_tolerance, 0.0),
        ),
        redaction=Redaction.with_extra(
            _header_names(args.redact_header), _paths("--redact-field", args.redact_field)
        ),
        shadow_timeout=_number("--shadow-timeout", args.shadow_timeout, 0.0, exclusive=True),
        primary_timeout=_number("--primary-timeout", args.primary_timeout, 0.0, exclusive=True),
        max_in_flight=_integer("--max-in-flight", args.max_in_flight, 0),
        samples=_integer("--samples", args.samples, 0),
        shadow_percent=_percent("--shadow-percent", args.shadow_percent),
    )


def parse_upstream(option: str, text: str) -> UpstreamAddress:
    parts = urlsplit(text)
    if parts.scheme != "http":
        raise ConfigError(f"{option} {text!r}: must be an http:// URL (https is not supported)")
    try:
        port = parts.port or 80
    except ValueError as error:
        raise ConfigError(f"{option} {text!r}: {error}") from None
    if not parts.hostname:
        raise ConfigError(f"{option} {text!r}: no host")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ConfigError(f"{option} {text!r}: only http://host:port[/prefix] (no query, fragment or user)")
    return UpstreamAddress(parts.hostname, port, parts.path.rstrip("/"))


def parse_address(option: str, text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[v6]:PORT``; port 0 asks the system for a free one."""
    host, colon, port_text = text.rpartition(":")
    if not colon or not host:
        raise ConfigError(f"{option} {text!r}: must be HOST:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    port = _integer(option, port_text, 0)
    if port > 65535:
        raise ConfigError(f"{option} {text!r}: port must be at most 65535")
    return host, port


def _paths(option: str, texts: Sequence[str]) -> tuple[FieldPath, ...]:
    try:
        return tuple(parse_path(text) for text in texts)
    except ValueError as error:
        raise ConfigError(f"{option}: {error}") from None


def _header_names(names: Sequence[str]) -> list[str]:
    for name in names:
        if not name.strip() or any(c in name for c in " :\t\r\n"):
            raise ConfigError(f"--redact-header {name!r}: not a header name")
    return list(names)


def _number(option: str, text: str, low: float, exclusive: bool = False) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < low or (exclusive and value == low):
        bound = f"> {low:g}" if exclusive else f">= {low:g}"
        raise ConfigError(f"{option} {text!r}: must be a number {bound}")
    return value


def _percent(option: str, text: str) -> float:
    value = _number(option, text, 0.0)
    if value > 100:
        raise ConfigError(f"{option} {text!r}: must be a number in [0, 100]")
    return value


def _integer(option: str, text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"{option} {text!r}: must be an integer >= {low}") from None
    if value < low:
        raise ConfigError(f"{option} {text!r}: must be an integer >= {low}")
    return value
