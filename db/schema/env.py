"""Alembic environment: applies the revisions to the database URL it is given.

`db.schema.upgrade(url)` passes the URL; the `alembic` command line reads DATABASE_URL
from the environment.
"""

from __future__ import annotations

import os
import sys
from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine, pool

from db.models import Base

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _url() -> str:
    url = config.attributes.get("database_url") or os.environ.get("DATABASE_URL", "")
    if not url:
        sys.exit("DATABASE_URL is not set: give the database, like postgresql+psycopg://user@host/db "
                 "(or run `python -m purelyops.release`, which reads .env)")
    return url


def apply_revisions() -> None:
    engine = create_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=Base.metadata)
        with context.begin_transaction():
            context.run_migrations()


apply_revisions()
