"""Alembic environment: runs migrations against DATABASE_URL."""

from __future__ import annotations

import sys
from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine, pool

from db.models import Base
from purelyops.settings import DatabaseSettings, SettingsError, load_settings

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _url() -> str:
    url = config.attributes.get("database_url")
    if url:
        return url
    try:
        return load_settings(DatabaseSettings).database_url
    except SettingsError as error:
        sys.exit(str(error))


def run_migrations_online() -> None:
    engine = create_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=Base.metadata)
        with context.begin_transaction():
            context.run_migrations()


run_migrations_online()
