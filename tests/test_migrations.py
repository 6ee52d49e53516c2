"""Alembic: upgrade head from an empty database, downgrade base, and models match."""

from __future__ import annotations

import os
import uuid

import psycopg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from db.migrate import alembic_config
from db.models import Base

PG_ADMIN = os.environ.get("PURELYOPS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture
def empty_database():
    name = f"purelyops_mig_{uuid.uuid4().hex[:8]}"
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
        assert diff == [], f"models and migrations disagree: {diff}"

        command.downgrade(config, "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}

        command.upgrade(config, "head")
        assert "mailboxes" in inspect(engine).get_table_names()
    finally:
        engine.dispose()
