"""The store for a database URL. Apart from ``base`` so that the store modules, which import the
interface, are not imported by it in turn."""

from __future__ import annotations

from .base import Store, StoreError, redact


def open_store(url: str) -> Store:
    """The store for ``url``: ``sqlite:///relative.db``, ``sqlite:////absolute.db``, ``postgresql://…``."""
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "sqlite":
        from .sqlite import SQLiteStore

        return SQLiteStore(url)
    if scheme in ("postgresql", "postgres"):
        from .postgres import PostgresStore

        return PostgresStore(url)
    raise StoreError(
        f"unsupported database URL {redact(url)!r}: use sqlite:///PATH or postgresql://USER:PASSWORD@HOST/DB"
    )
