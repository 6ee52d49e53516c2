"""The schema revisions (Alembic): upgrade head from an empty database, downgrade base, and
models match; and the release step's words when the database is wrong or away."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from db.models import Base
from db.schema import alembic_config

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN = os.environ.get("PURELYOPS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture
def empty_database():
    name = f"purelyops_schema_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    yield f"{base}/{name}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_upgrade_downgrade_upgrade(empty_database: str) -> None:
    config = alembic_config(empty_database)
    config.attributes["configure_logger"] = False
    engine = create_engine(empty_database)
    try:
        command.upgrade(config, "head")
        tables = set(inspect(engine).get_table_names())
        assert {"audit_log", "deletion_queue", "mailboxes", "domains"} <= tables
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == [], f"models and schema revisions disagree: {diff}"

        command.downgrade(config, "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}

        command.upgrade(config, "head")
        assert "mailboxes" in inspect(engine).get_table_names()
    finally:
        engine.dispose()


def release(tmp_path: Path, database_url: str) -> subprocess.CompletedProcess:
    """The Procfile's release step with only DATABASE_URL set, from an empty directory."""
    return subprocess.run(
        [sys.executable, "-m", "purelyops.release"],
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), "DATABASE_URL": database_url},
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )


def test_release_brings_an_empty_database_to_the_newest_schema(empty_database: str, tmp_path: Path) -> None:
    result = release(tmp_path, empty_database.replace("postgresql+psycopg://", "postgresql://", 1))
    assert result.returncode == 0, result.stderr
    engine = create_engine(empty_database)
    try:
        assert "mailboxes" in inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_release_says_in_words_when_the_database_is_away(tmp_path: Path) -> None:
    result = release(tmp_path, "postgresql://postgres@127.0.0.1:1/nowhere")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "purelyops cannot upgrade the database schema: the database is not reachable (" in result.stderr


def test_release_refuses_a_url_that_is_not_postgresql(tmp_path: Path) -> None:
    result = release(tmp_path, "mysql://root@127.0.0.1/x")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "purelyops cannot start" in result.stderr and "DATABASE_URL:" in result.stderr


def test_the_storage_layer_never_imports_purelyops() -> None:
    for path in (ROOT / "db").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not [n for n in names if n.split(".")[0] in {"purelyops", "bot", "workers"}], path
