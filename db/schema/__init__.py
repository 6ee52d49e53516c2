"""The database schema's revisions (Alembic), and the one call that applies them.

    upgrade("postgresql+psycopg://user@host/db")   # to the newest schema

The caller gives the URL: reading settings is the release step's job
(`python -m purelyops.release`), not the storage layer's.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

ROOT = Path(__file__).resolve().parent.parent.parent


def alembic_config(database_url: str) -> Config:
    """Alembic's configuration (alembic.ini) pointed at `database_url`."""
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the database at `database_url` to `revision` (the newest schema by default).

    A database that cannot be reached raises sqlalchemy's OperationalError."""
    command.upgrade(alembic_config(database_url), revision)
