"""`python -m db.migrate`: bring the database to the newest schema (Alembic upgrade head)."""

from __future__ import annotations

import sys
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.exc import OperationalError

from purelyops.settings import DatabaseSettings, SettingsError, load_settings

ROOT = Path(__file__).resolve().parent.parent


def alembic_config(database_url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["database_url"] = database_url
    return config


def main() -> int:
    try:
        url = load_settings(DatabaseSettings).database_url
    except SettingsError as error:
        print(error, file=sys.stderr)
        return 2
    try:
        command.upgrade(alembic_config(url), "head")
    except OperationalError as error:
        reason = str(error.orig).strip().splitlines()[0] if error.orig else "no answer"
        print(f"purelyops cannot migrate: the database is not reachable ({reason}).", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
