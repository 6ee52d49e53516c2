"""`python -m purelyops.release`: the release step, run before the other processes start.

It reads DATABASE_URL from the settings (environment or `.env`) and brings the database
to the newest schema with `db.schema.upgrade`. A missing or wrong DATABASE_URL, or a
database that does not answer, is told in one message and exit status 2 or 1.
"""

from __future__ import annotations

import sys

from sqlalchemy.exc import OperationalError

from db.schema import upgrade
from purelyops.settings import DatabaseSettings, SettingsError, load_settings


def main() -> int:
    try:
        url = load_settings(DatabaseSettings).database_url
    except SettingsError as error:
        print(error, file=sys.stderr)
        return 2
    try:
        upgrade(url)
    except OperationalError as error:
        reason = str(error.orig).strip().splitlines()[0] if error.orig else "no answer"
        print(f"purelyops cannot upgrade the database schema: the database is not reachable ({reason}).",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
