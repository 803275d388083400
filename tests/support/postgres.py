"""A throwaway PostgreSQL server for tests: the real server binaries, on loopback, with passwords.

No Docker, no mock: ``initdb`` into a temporary directory, then ``postgres`` on 127.0.0.1 and a free
port, unix sockets inside the data directory (never /var/run/postgresql), scram-sha-256 password
authentication for every connection, and a superuser ``hal9`` with a random password, so every
database URL a test hands to the code under test carries a secret that must never reach a log.

Debian's system cluster (if its package started one on 5432) is neither used nor disturbed.

PostgreSQL refuses to run as root. When the tests run as root the server runs as the ``postgres``
OS user (created by Debian's package), which then owns the working directory; a ``workdir`` given by
the caller must be reachable by that user (pytest's ``tmp_path`` is not: it sits under a 0700
directory), so the default, a fresh directory under ``$TMPDIR``, is the one to use.

Where the binaries come from: ``pg_config --bindir`` if that directory has ``initdb``, else the
newest ``/usr/lib/postgresql/<version>/bin``.

The server process dies with the process that started it (PR_SET_PDEATHSIG), so a killed test run
leaves no postgres behind. Connections (``create_database`` and friends) use psycopg, imported only
when needed.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    import psycopg

SEARCH_ROOT = Path("/usr/lib/postgresql")
HOST = "127.0.0.1"
SUPERUSER = "hal9"
OS_USER = "postgres"  # who runs the server when we are root
INSTALL_HINT = (
    "PostgreSQL server binaries (initdb, postgres, pg_ctl) not found: install Debian's postgresql "
    "package (apt-get install postgresql)"
)
# Durability is worthless for a server that is deleted after the tests; speed is not.
TEST_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "logging_collector": "off",
    "log_destination": "stderr",
    "lc_messages": "C",
}
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,54}$")  # leaves room for the read-only role's suffix


class PostgresError(RuntimeError):
    pass


def find_bindir(search_root: Path = SEARCH_ROOT) -> Path:
    """The directory holding initdb, postgres and pg_ctl."""
    pg_config = shutil.which("pg_config")
    if pg_config:
        result = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        bindir = Path(result.stdout.strip())
        # libpq-dev's pg_config alone (client only) names a directory without the server.
        if result.returncode == 0 and (bindir / "initdb").exists():
            return bindir
    candidates = [path.parent for path in search_root.glob("*/bin/initdb")]
    if not candidates:
        raise PostgresError(INSTALL_HINT)
    return max(candidates, key=lambda bindir: _version_key(bindir.parent.name))


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) if part.isdigit() else -1 for part in version.split("."))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass
class PostgresServer:
    """A PostgreSQL server of our own; ``url`` reaches its ``postgres`` database as ``hal9``."""

    workdir: Path
    bindir: Path = field(default_factory=find_bindir)
    # Extra ``-c`` settings, e.g. {"max_connections": "20"}; they win over TEST_SETTINGS.
    settings: dict[str, str] = field(default_factory=dict)
    user: str = SUPERUSER
    password: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)
    host: str = HOST
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    # database -> (role, password) of the read-only role made for it
    _readers: dict[str, tuple[str, str]] = field(default_factory=dict, repr=False)
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def log_path(self) -> Path:
        return self.workdir / "postgres.log"

    @property
    def url(self) -> str:
        return self.url_for("postgres")

    def url_for(self, database: str, user: str | None = None, password: str | None = None) -> str:
        user = self.user if user is None else user
        password = self.password if password is None else password
        return (
            f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}"
            f"@{self.host}:{self.port}/{quote(database, safe='')}"
        )

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self, timeout: float = 60, attempts: int = 3) -> None:
        missing = [name for name in ("initdb", "postgres", "pg_ctl") if not (self.bindir / name).exists()]
        if missing:
            raise PostgresError(f"{', '.join(missing)} not found in {self.bindir}: {INSTALL_HINT}")
        try:
            self._prepare_workdir()
            if not (self.data_dir / "PG_VERSION").exists():
                self._initdb()
            for attempt in range(1, attempts + 1):
                self.port = free_port()
                self._spawn_postgres()
                try:
                    self._wait_ready(timeout)
                    return
                except PostgresError as error:
                    self.stop()
                    # free_port() can only promise a port was free a moment ago; on a shared machine
                    # another process may take it first. Start again on a new port.
                    if "Address already in use" not in str(error) or attempt == attempts:
                        raise
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = 30) -> None:
        """Fast shutdown (disconnects clients, then exits); safe to call at any point, and twice."""
        proc, self.process = self.process, None
        if (self.data_dir / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._run(
                    [
                        str(self.bindir / "pg_ctl"),
                        "stop",
                        "-D",
                        str(self.data_dir),
                        "-m",
                        "fast",
                        "-w",
                        "-t",
                        str(int(timeout)),
                    ],
                    timeout=timeout + 5,
                )
        if proc is not None:
            if proc.poll() is None:
                # No pid file yet (killed during its start) or pg_ctl failed: signal it ourselves.
                proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                # The postmaster and its children share the process group start_new_session made.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    # --- databases and roles ------------------------------------------------------------------

    def connect(self, database: str = "postgres") -> psycopg.Connection[Any]:
        """An autocommit connection as the superuser."""
        import psycopg

        return psycopg.connect(self.url_for(database), autocommit=True, connect_timeout=10)

    def create_database(self, name: str) -> str:
        from psycopg import sql

        _check_name(name)
        with self.connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        """Drop the database (closing any connection left open to it) and its read-only role."""
        from psycopg import sql

        _check_name(name)
        with self.connect() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            reader = self._readers.pop(name, None)
            if reader is not None:
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(reader[0])))

    def create_read_only_role(self, database: str) -> str:
        """A URL for a role that may connect to ``database`` and SELECT from its tables (those there now
        and those ``hal9`` creates later) but may not create anything in it nor write to it."""
        from psycopg import sql

        _check_name(database)
        if database in self._readers:
            role, password = self._readers[database]
            return self.url_for(database, user=role, password=password)
        role, password = f"{database}_reader", secrets.token_urlsafe(24)
        db, reader = sql.Identifier(database), sql.Identifier(role)
        with self.connect() as conn:
            # A literal, not a parameter: utility statements take no bind parameters. The statement
            # is not logged (log_statement is "none").
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(reader, sql.Literal(password)))
            conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(db, reader))
            # Creating schemas needs CREATE on the database, temporary tables TEMPORARY.
            conn.execute(sql.SQL("REVOKE CREATE, TEMPORARY ON DATABASE {} FROM PUBLIC").format(db))
        self._readers[database] = (role, password)
        with self.connect(database) as conn:
            # PostgreSQL 15 no longer grants CREATE on the public schema to everyone; older ones do.
            conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
            conn.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(reader))
            conn.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}").format(reader))
            conn.execute(
                sql.SQL(
                    "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA public GRANT SELECT ON TABLES TO {}"
                ).format(sql.Identifier(self.user), reader)
            )
        return self.url_for(database, user=role, password=password)

    # --- pieces ----------------------------------------------------------------------------------

    def _os_user(self) -> pwd.struct_passwd | None:
        """The account the server runs as: ``postgres`` when we are root, else ourselves (None)."""
        if os.geteuid() != 0:
            return None
        try:
            return pwd.getpwnam(OS_USER)
        except KeyError:
            raise PostgresError(
                f"PostgreSQL will not run as root and there is no {OS_USER!r} OS user to run it as: "
                "install Debian's postgresql package (it creates the user)"
            ) from None

    def _prepare_workdir(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        account = self._os_user()
        if account is None:
            return
        os.chown(self.workdir, account.pw_uid, account.pw_gid)
        for parent in self.workdir.resolve().parents:
            mode = parent.stat()
            others_may_enter = mode.st_mode & stat.S_IXOTH
            if not others_may_enter and mode.st_uid != account.pw_uid:
                raise PostgresError(
                    f"the {OS_USER} OS user cannot reach {self.workdir} (no search permission on {parent}); "
                    "use a working directory under /tmp (the default) instead"
                )

    def _env(self) -> dict[str, str]:
        # The caller's PGDATA, PGPORT, PGHOST, ... must not redirect our commands to another server.
        env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
        env.update(LC_ALL="C", LANG="C")
        account = self._os_user()
        if account is not None:
            env.update(HOME=account.pw_dir, USER=account.pw_name, LOGNAME=account.pw_name)
        return env

    def _run(self, args: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
        account = self._os_user()
        return subprocess.run(
            args,
            capture_output=True,
            text=True,
            env=self._env(),
            cwd=self.workdir,
            user=None if account is None else account.pw_uid,
            group=None if account is None else account.pw_gid,
            extra_groups=None if account is None else [],
            preexec_fn=_die_with_parent,
            timeout=timeout,
            check=False,
        )

    def _initdb(self) -> None:
        pwfile = self.workdir / "pwfile"
        pwfile.write_text(self.password + "\n")
        pwfile.chmod(0o600)
        account = self._os_user()
        if account is not None:
            os.chown(pwfile, account.pw_uid, account.pw_gid)
        try:
            result = self._run(
                [
                    str(self.bindir / "initdb"),
                    "-D",
                    str(self.data_dir),
                    f"--username={self.user}",
                    f"--pwfile={pwfile}",
                    "--auth-local=scram-sha-256",
                    "--auth-host=scram-sha-256",
                    "--encoding=UTF8",
                    "--no-locale",
                    "--no-sync",
                ]
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise PostgresError(f"initdb failed (exit {result.returncode}):\n{result.stdout}{result.stderr}")

    def _spawn_postgres(self) -> None:
        settings = {
            **TEST_SETTINGS,
            "listen_addresses": self.host,
            "port": str(self.port),
            "unix_socket_directories": str(self.data_dir),
            **self.settings,
        }
        options = [arg for key, value in settings.items() for arg in ("-c", f"{key}={value}")]
        if self._log is None:
            self._log = self.log_path.open("ab")
        self._log.write(f"--- starting on {self.host}:{self.port}\n".encode())
        self._log.flush()
        account = self._os_user()
        self.process = subprocess.Popen(
            [str(self.bindir / "postgres"), "-D", str(self.data_dir), *options],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self._env(),
            cwd=self.workdir,
            user=None if account is None else account.pw_uid,
            group=None if account is None else account.pw_gid,
            extra_groups=None if account is None else [],
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )

    def _log_tail(self) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return text[text.rfind("--- starting on") :][-3000:]

    def _wait_ready(self, timeout: float) -> None:
        """Ready when the postmaster says so in its pid file (what ``pg_ctl start -w`` waits for) and
        our port answers."""
        assert self.process is not None
        pid_file = self.data_dir / "postmaster.pid"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise PostgresError(f"postgres exited with {self.process.returncode}:\n{self._log_tail()}")
            with contextlib.suppress(FileNotFoundError):
                lines = pid_file.read_text().splitlines()
                # Line 1 is the postmaster's pid, 4 the port, 8 the status.
                if (
                    len(lines) >= 8
                    and lines[0].strip() == str(self.process.pid)
                    and lines[7].strip() == "ready"
                ):
                    with contextlib.suppress(OSError), socket.create_connection((self.host, self.port), 1):
                        return
            time.sleep(0.05)
        raise PostgresError(f"postgres not ready after {timeout:.0f}s:\n{self._log_tail()}")


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise ValueError(f"database name {name!r}: use lowercase letters, digits and _ (at most 55)")


@contextlib.contextmanager
def running(workdir: Path | None = None) -> Iterator[PostgresServer]:
    """Start a server for the duration of the ``with`` block; a directory made here is removed after."""
    owned = workdir is None
    directory = Path(tempfile.mkdtemp(prefix="hal9-pg-")) if workdir is None else workdir
    server = PostgresServer(workdir=directory)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        if owned:
            shutil.rmtree(directory, ignore_errors=True)


def _die_with_parent() -> None:
    """In the child, before exec (and after it took the postgres user's identity, which would reset
    it): ask Linux to signal it when the parent dies, so a killed test run leaves no server behind.
    SIGINT is PostgreSQL's fast shutdown."""
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGINT)
