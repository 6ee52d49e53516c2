"""`python -m purelyops.envfile .env`: the values of `.env` as shell `export` lines.

scripts/run needs `.env` in its environment (DATABASE_URL and REDIS_URL for itself, the
rest for the processes it starts). `.env` is not shell: `USER_SYNC_CRON=0 2 * * *` is a
value with spaces, not a command, and a `#` inside a value is not a comment. So it is read
here exactly as every process reads it (python-dotenv, through pydantic-settings) and
printed quoted for the shell. A variable already set in the environment wins over `.env`,
as it does in the processes. Values go to stdout only, for `eval`; never to argv or a log.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from collections.abc import Mapping

from dotenv import dotenv_values

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def shell_exports(path: str, environ: Mapping[str, str] = os.environ) -> str:
    """One `export NAME='value'` line per value in the file that the environment does not set."""
    lines = []
    for name, value in dotenv_values(path).items():
        if value is None or name in environ or not _NAME.fullmatch(name):
            continue
        lines.append(f"export {name}={shlex.quote(value)}")
    return "".join(line + "\n" for line in lines)


def main(argv: list[str]) -> int:
    path = argv[1] if len(argv) > 1 else ".env"
    try:
        exports = shell_exports(path)
    except OSError as error:
        print(f"cannot read {path}: {error.strerror}", file=sys.stderr)
        return 2
    except UnicodeDecodeError:
        print(f"cannot read {path}: it is not UTF-8 text", file=sys.stderr)
        return 2
    sys.stdout.write(exports)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
