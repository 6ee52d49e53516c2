"""scripts/setup.sh's set-up of the services, run in a sandbox: a Redis on a port of its own,
a uniquely named PostgreSQL role and database on the local server (dropped afterwards).

What it promises: the database's role is no superuser and has a random password, written
to .env; a Redis it starts listens on loopback and needs its random password; neither
password is ever on a command line (which `ps` shows every local user); a Redis or a
PostgreSQL that was already running is left exactly as it was. The shared servers the
tests use (127.0.0.1:5432, 127.0.0.1:6379) are never restarted or reconfigured here."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis
from dotenv import dotenv_values
from psycopg import sql

from tests.conftest import PG_ADMIN, ROOT, free_port, wait_until

SETUP = ROOT / "scripts" / "setup.sh"
pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None or shutil.which("psql") is None,
                                reason="redis-server and psql are needed (scripts/test installs them)")


def run_setup(function: str, envfile: Path, **env: str) -> subprocess.CompletedProcess:
    """`source scripts/setup.sh; <function> <envfile>`, with only these variables set."""
    base = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    return subprocess.run(["bash", "-c", f'set -euo pipefail; source "$0"; {function} "$1"', str(SETUP), str(envfile)],
                          env={**base, **env}, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def shutdown(url: str) -> None:
    try:
        redis.Redis.from_url(url).shutdown(nosave=True)
    except redis.ConnectionError:
        pass  # it went


def cleanup_redis_files(port: int) -> None:
    for name in (f"redis-{port}.pid", f"redis-{port}.log"):
        (ROOT / ".redis" / name).unlink(missing_ok=True)


@pytest.fixture
def command_lines(tmp_path: Path) -> tuple[str, Path]:
    """A PATH under which every program setup.sh runs by name (psql, redis-server,
    redis-cli, python3, awk…) first writes its command line to a log, then runs: a shim for
    each name in PATH, ahead of the real one. The PATH, and the log."""
    shims, log = tmp_path / "shims", tmp_path / "command-lines.log"
    shims.mkdir()
    log.touch()
    for directory in os.environ["PATH"].split(os.pathsep):
        for real in sorted(Path(directory).glob("*")) if Path(directory).is_dir() else []:
            shim = shims / real.name
            if shim.exists() or not (real.is_file() and os.access(real, os.X_OK)):
                continue
            shim.write_text(f"#!/bin/sh\nprintf '%s\\n' \"{real.name} $*\" >> {shlex.quote(str(log))}\n"
                            f"exec {shlex.quote(str(real))} \"$@\"\n")
            shim.chmod(0o755)
    return os.pathsep.join([str(shims), os.environ["PATH"]]), log


def run_and_record(function: str, envfile: Path, command_lines: tuple[str, Path], **env: str
                   ) -> subprocess.CompletedProcess:
    """run_setup, with every command line it made recorded (command_lines)."""
    return run_setup(function, envfile, PATH=command_lines[0], **env)


@pytest.fixture
def redis_port() -> Iterator[int]:
    port = free_port()
    yield port
    cleanup_redis_files(port)


def test_the_redis_it_starts_listens_on_loopback_and_needs_its_password(tmp_path: Path, redis_port: int,
                                                                        command_lines) -> None:
    envfile = tmp_path / ".env"
    envfile.write_text("SLACK_COMMAND=/pm\n")
    result = run_and_record("setup_redis", envfile, command_lines, REDIS_URL=f"redis://127.0.0.1:{redis_port}/0")
    assert result.returncode == 0, result.stderr
    url = dotenv_values(envfile)["REDIS_URL"]
    try:
        password = redis.connection.parse_url(url)["password"]
        assert len(password) >= 32 and url == f"redis://:{password}@127.0.0.1:{redis_port}/0"
        assert dotenv_values(envfile)["SLACK_COMMAND"] == "/pm"  # the rest of .env is as it was
        assert oct(envfile.stat().st_mode & 0o777) == "0o600"
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=redis_port).ping()
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=redis_port, password="guessed").ping()
        server = redis.Redis.from_url(url)
        assert server.config_get("bind")["bind"] == "127.0.0.1"
        assert server.config_get("requirepass")["requirepass"] == password
        assert server.config_get("protected-mode")["protected-mode"] == "yes"
        # The password is in no command line a local user could read.
        pid = int((ROOT / ".redis" / f"redis-{redis_port}.pid").read_text())
        assert password not in Path(f"/proc/{pid}/cmdline").read_text()
        started = server.info("server")["run_id"]

        # Run again: the Redis and .env stay as they are.
        again = run_and_record("setup_redis", envfile, command_lines, REDIS_URL=url)
        assert again.returncode == 0, again.stderr
        assert dotenv_values(envfile)["REDIS_URL"] == url
        assert server.info("server")["run_id"] == started
        # Started, pinged with the password, and asked again: never with it on a command line.
        recorded = command_lines[1].read_text()
        assert "redis-server -" in recorded and "redis-cli" in recorded
        assert password not in recorded
    finally:
        shutdown(url)


def test_beside_a_running_redis_it_changes_nothing(tmp_path: Path, redis_port: int) -> None:
    """A Redis someone else runs (no password, say) is not ours to reconfigure."""
    proc = subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
    try:
        theirs = redis.Redis(port=redis_port)
        wait_until(lambda: theirs.ping(), 10, "their Redis")
        before = {key: theirs.config_get(key)[key] for key in ("bind", "requirepass", "port", "protected-mode")}
        envfile = tmp_path / ".env"
        envfile.write_text("REDIS_URL=redis://127.0.0.1:%d/3\n" % redis_port)
        result = run_setup("setup_redis", envfile, REDIS_URL=f"redis://127.0.0.1:{redis_port}/3")
        assert result.returncode == 0, result.stderr
        assert "has no password" in result.stderr  # it says so, and leaves it
        assert envfile.read_text() == "REDIS_URL=redis://127.0.0.1:%d/3\n" % redis_port
        assert {key: theirs.config_get(key)[key] for key in before} == before

        # With a password it does not know, it refuses in words and changes nothing either.
        theirs.config_set("requirepass", "their-own-password")
        refused = run_setup("setup_redis", envfile, REDIS_URL=f"redis://127.0.0.1:{redis_port}/3")
        assert refused.returncode != 0 and "does not take REDIS_URL's password" in refused.stderr
        assert redis.Redis(port=redis_port, password="their-own-password").config_get("requirepass") == {
            "requirepass": "their-own-password"}
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def sandbox_names() -> Iterator[tuple[str, str]]:
    """A role and a database name of this test's own, dropped afterwards."""
    tag = uuid.uuid4().hex[:10]
    role, database = f"purelyops_setup_{tag}", f"purelyops_setup_db_{tag}"
    yield role, database
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role + "_su")))


def role_row(role: str) -> tuple | None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        return conn.execute("SELECT rolsuper, rolcreatedb, rolcanlogin, rolpassword IS NOT NULL FROM pg_authid "
                            "WHERE rolname = %s", (role,)).fetchone()


def owner_of(database: str) -> str:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        return conn.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s",
                            (database,)).fetchone()[0]


def admin_host_port() -> tuple[str, int]:
    info = psycopg.conninfo.conninfo_to_dict(PG_ADMIN)
    return info.get("host", "127.0.0.1"), int(info.get("port", 5432))


def test_the_database_role_is_no_superuser_and_has_a_random_password(tmp_path: Path, sandbox_names,
                                                                      command_lines) -> None:
    role, database = sandbox_names
    _, port = admin_host_port()
    envfile = tmp_path / ".env"
    url = f"postgresql+psycopg://{role}@127.0.0.1:{port}/{database}"
    envfile.write_text(f"DATABASE_URL={url}\nTZ=UTC\n")
    result = run_and_record("setup_database", envfile, command_lines, DATABASE_URL=url, PGCONNECT_TIMEOUT="5")
    assert result.returncode == 0, result.stderr
    written = dotenv_values(envfile)["DATABASE_URL"]
    info = psycopg.conninfo.conninfo_to_dict(written.replace("+psycopg", ""))
    assert info["user"] == role and info["dbname"] == database and len(info["password"]) >= 32
    assert written.startswith("postgresql+psycopg://") and dotenv_values(envfile)["TZ"] == "UTC"
    assert role_row(role) == (False, True, True, True)  # no superuser, may create databases, a password
    assert owner_of(database) == role
    with psycopg.connect(written.replace("+psycopg", ""), autocommit=True) as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == role
        conn.execute("CREATE TABLE created_by_the_role (id int)")  # it owns what it makes there

    # Run again with what it wrote: nothing changes, the password included.
    again = run_and_record("setup_database", envfile, command_lines, DATABASE_URL=written, PGCONNECT_TIMEOUT="5")
    assert again.returncode == 0, again.stderr
    assert dotenv_values(envfile)["DATABASE_URL"] == written
    # The role made with its password, .env written, the password tried: never on a command line.
    recorded = command_lines[1].read_text()
    assert "psql" in recorded and "awk" in recorded
    assert info["password"] not in recorded


def test_a_role_that_is_not_ours_is_left_as_it_is(tmp_path: Path, sandbox_names) -> None:
    """Another program's role, named in a DATABASE_URL without its password: refused in words."""
    role, database = sandbox_names
    _, port = admin_host_port()
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'their-own-password'").format(sql.Identifier(role)))
        before = conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role,)).fetchone()
    envfile = tmp_path / ".env"
    url = f"postgresql+psycopg://{role}@127.0.0.1:{port}/{database}"
    result = run_setup("setup_database", envfile, DATABASE_URL=url, PGCONNECT_TIMEOUT="5")
    assert result.returncode != 0 and "It is not ours to change" in result.stderr
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        assert conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role,)).fetchone() == before
        assert conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone() is None
    assert not envfile.exists()


def test_a_superuser_url_gets_a_role_of_its_own_that_takes_the_old_database_over(tmp_path: Path,
                                                                                 sandbox_names) -> None:
    """An older set-up: DATABASE_URL names a superuser, whose tables are in the database."""
    role, database = sandbox_names
    superuser = role + "_su"
    _, port = admin_host_port()
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN SUPERUSER").format(sql.Identifier(superuser)))
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(database), sql.Identifier(superuser)))
    old = PG_ADMIN.rsplit("/", 1)[0] + f"/{database}"
    with psycopg.connect(old, autocommit=True) as conn:
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(superuser)))
        conn.execute("CREATE TYPE state AS ENUM ('a', 'b')")
        conn.execute("CREATE TABLE jobs (id serial PRIMARY KEY, s state)")
        conn.execute("CREATE SEQUENCE loose")
        conn.execute("CREATE VIEW job_ids AS SELECT id FROM jobs")
    envfile = tmp_path / ".env"
    url = f"postgresql+psycopg://{superuser}@127.0.0.1:{port}/{database}"
    result = run_setup("setup_database", envfile, DATABASE_URL=url, PURELYOPS_DB_ROLE=role, PGCONNECT_TIMEOUT="5")
    assert result.returncode == 0, result.stderr
    written = dotenv_values(envfile)["DATABASE_URL"]
    assert psycopg.conninfo.conninfo_to_dict(written.replace("+psycopg", ""))["user"] == role
    assert role_row(role)[0] is False and role_row(superuser)[0] is True  # theirs left a superuser
    assert owner_of(database) == role
    with psycopg.connect(written.replace("+psycopg", ""), autocommit=True) as conn:
        owners = conn.execute(
            "SELECT c.relname, pg_get_userbyid(c.relowner) FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'S', 'v')").fetchall()
        assert owners and {owner for _, owner in owners} == {role}, owners
        conn.execute("ALTER TABLE jobs ADD COLUMN note text")  # a schema revision can run
        assert conn.execute("SELECT pg_get_userbyid(typowner) FROM pg_type WHERE typname = 'state'").fetchone() == (
            role,)


def test_scripts_run_brings_the_services_up_through_these_functions() -> None:
    """scripts/run calls them (the CI path, scripts/test, keeps its trust URL and Redis)."""
    text = (ROOT / "scripts" / "run").read_text()
    assert 'setup_database "$ROOT/.env"' in text and 'setup_redis "$ROOT/.env"' in text
    assert "LOGIN SUPERUSER" not in (ROOT / "scripts" / "setup.sh").read_text()
