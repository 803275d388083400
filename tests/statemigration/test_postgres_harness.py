"""The throwaway PostgreSQL server the state-migration tests rely on does what they assume."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg import errors

from tests.support import postgres as pg
from tests.support.manifests import ROOT
from tests.support.processes import alive, children


@pytest.fixture(autouse=True)
def _no_ambient_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Only the URL may carry a password: no PGPASSWORD, no ~/.pgpass."""
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "no-pgpass"))


def _accepts_tcp(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), 1):
            return True
    except OSError:
        return False


def test_superuser_connects_with_password_on_loopback(postgres: pg.PostgresServer) -> None:
    parts = urlsplit(postgres.url)
    assert (parts.hostname, parts.port, parts.username) == ("127.0.0.1", postgres.port, "hal9")
    assert parts.password == postgres.password
    assert postgres.port != 5432  # never Debian's system cluster
    with psycopg.connect(postgres.url) as conn:
        row = conn.execute(
            "SELECT host(inet_server_addr()), current_user, "
            "(SELECT rolsuper FROM pg_roles WHERE rolname = current_user), "
            "current_setting('listen_addresses'), current_setting('unix_socket_directories')"
        ).fetchone()
    assert row == ("127.0.0.1", "hal9", True, "127.0.0.1", str(postgres.data_dir))


@pytest.mark.parametrize("password", ["wrong", None])
def test_a_password_is_required(postgres: pg.PostgresServer, password: str | None) -> None:
    if password is None:
        url = f"postgresql://hal9@127.0.0.1:{postgres.port}/postgres"
    else:
        url = postgres.url_for("postgres", password=password)
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(url, connect_timeout=5)


def test_databases_are_isolated(postgres: pg.PostgresServer, pg_database: str) -> None:
    other = postgres.create_database("harness_other")
    try:
        with psycopg.connect(pg_database) as conn:
            conn.execute("CREATE TABLE neurons (id int PRIMARY KEY)")
            conn.execute("INSERT INTO neurons VALUES (1)")
        with psycopg.connect(other) as conn:
            assert conn.execute("SELECT to_regclass('neurons')").fetchone() == (None,)
    finally:
        postgres.drop_database("harness_other")
    with postgres.connect() as conn:
        names = {row[0] for row in conn.execute("SELECT datname FROM pg_database")}
    assert "harness_other" not in names
    assert urlsplit(pg_database).path.lstrip("/") in names


def test_drop_database_closes_leftover_connections(postgres: pg.PostgresServer) -> None:
    url = postgres.create_database("harness_leak")
    leaked = psycopg.connect(url)  # what a buggy test or migration might leave behind
    try:
        postgres.drop_database("harness_leak")
    finally:
        leaked.close()


def test_read_only_role_can_select_but_not_write(postgres: pg.PostgresServer, pg_database: str) -> None:
    with psycopg.connect(pg_database) as conn:
        conn.execute("CREATE TABLE before_role (id int)")
        conn.execute("INSERT INTO before_role VALUES (1)")
    reader_url = postgres.create_read_only_role(urlsplit(pg_database).path.lstrip("/"))
    assert urlsplit(reader_url).password
    with psycopg.connect(pg_database) as conn:
        conn.execute("CREATE TABLE after_role (id int)")
        conn.execute("INSERT INTO after_role VALUES (2)")

    with psycopg.connect(reader_url, autocommit=True) as conn:
        assert conn.execute("SELECT id FROM before_role").fetchall() == [(1,)]
        assert conn.execute("SELECT id FROM after_role").fetchall() == [(2,)]
        for statement in (
            "CREATE TABLE neurons (id int)",
            "CREATE TEMPORARY TABLE scratch (id int)",
            "CREATE SCHEMA hierarchical",
            "INSERT INTO before_role VALUES (3)",
            "UPDATE after_role SET id = 4",
        ):
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute(statement)


def test_read_only_role_is_dropped_with_its_database(postgres: pg.PostgresServer) -> None:
    postgres.create_database("harness_reader")
    postgres.create_read_only_role("harness_reader")
    postgres.drop_database("harness_reader")
    with postgres.connect() as conn:
        assert conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'harness_reader_reader'").fetchall() == []


@pytest.mark.postgres
def test_stop_leaves_no_server_process() -> None:
    with pg.running() as server:
        postmaster = server.process
        assert postmaster is not None
        client = psycopg.connect(server.url)  # an open session must not hold up the shutdown
        backends = children(postmaster.pid)
        assert backends  # checkpointer, walwriter, ... and the client's backend
        workdir, port = server.workdir, server.port
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 10
        client.close()
        server.stop()  # twice is harmless
    assert not alive(postmaster.pid)
    assert not [pid for pid in backends if alive(pid)]
    assert not _accepts_tcp(port)
    assert not workdir.exists()


@pytest.mark.postgres
def test_a_taken_port_means_another_port(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        ports = iter([taken])
        real_free_port = pg.free_port
        monkeypatch.setattr(pg, "free_port", lambda: next(ports, None) or real_free_port())
        with pg.running() as server, psycopg.connect(server.url) as conn:
            assert server.port != taken
            assert conn.execute("SELECT 1").fetchone() == (1,)
            assert "Address already in use" in server.log_path.read_text()


@pytest.mark.postgres
def test_a_failed_start_leaves_nothing_running(tmp_path: Path) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="hal9-pg-"))
    server = pg.PostgresServer(workdir=workdir, settings={"shared_buffers": "not-a-size"})
    try:
        with pytest.raises(pg.PostgresError, match="shared_buffers"):
            server.start()
        assert server.process is None
        assert not (server.data_dir / "postmaster.pid").exists()
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.mark.postgres
def test_the_server_dies_with_the_test_process() -> None:
    script = (
        "import tempfile, time\n"
        "from pathlib import Path\n"
        "from tests.support import postgres as pg\n"
        "server = pg.PostgresServer(workdir=Path(tempfile.mkdtemp(prefix='hal9-pg-')))\n"
        "server.start()\n"
        "print(server.process.pid, server.workdir, flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    workdir = None
    try:
        assert parent.stdout is not None
        pid_text, workdir_text = parent.stdout.readline().split()
        workdir, postmaster = Path(workdir_text), int(pid_text)
        assert alive(postmaster)
        os.kill(parent.pid, signal.SIGKILL)  # no finally, no atexit: only the kernel can help
        parent.wait()
        deadline = time.monotonic() + 20
        while alive(postmaster) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(postmaster)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)


def test_missing_postgresql_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(pg.shutil, "which", lambda _name: None)
    with pytest.raises(pg.PostgresError, match="install Debian's postgresql package"):
        pg.find_bindir(search_root=tmp_path)


def test_newest_installed_version_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(pg.shutil, "which", lambda _name: None)
    for version in ("9.6", "15", "16", "13"):
        (tmp_path / version / "bin").mkdir(parents=True)
        (tmp_path / version / "bin" / "initdb").touch()
    assert pg.find_bindir(search_root=tmp_path) == tmp_path / "16" / "bin"
