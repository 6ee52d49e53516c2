"""`scripts/bench`: the benchmarks, printed as medians, percentiles and ratios.

They are not timed tests: they run against the same real PostgreSQL and Redis and the
same fakes as the tests, and print figures for the notes.
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from contextlib import ExitStack

import psycopg
import redis

from db.schema import upgrade
from tests.bench import migrations, p1_ack, p2_p3_mailboxes, p4_parser, p6_dns, p8_check
from tests.conftest import APP_TOKEN, BOT_TOKEN, PG_ADMIN, PM_TOKEN, REDIS_BASE, make_settings
from tests.fakes.purelymail_fake import FakePurelyMail
from tests.fakes.slack_fake import FakeSlack

BENCHMARKS = {"p1": p1_ack.run, "p2": p2_p3_mailboxes.run, "p3": p2_p3_mailboxes.run_p3, "p4": migrations.p4,
              "p4parser": p4_parser.run, "p5": migrations.p5, "p6": p6_dns.run, "p7": migrations.p7,
              "p7io": migrations.p7io, "p8": p8_check.run}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", default=list(BENCHMARKS), help="which benchmarks (default: all)")
    args = parser.parse_args()
    name = f"purelyops_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    url = f"{base}/{name}"
    try:
        os.environ.setdefault("LOG_LEVEL", "WARNING")
        upgrade(url)
        with ExitStack() as stack:
            slack = FakeSlack(bot_token=BOT_TOKEN, app_token=APP_TOKEN)
            slack.start()
            stack.callback(slack.stop)
            purelymail = FakePurelyMail(token=PM_TOKEN)
            purelymail.start()
            stack.callback(purelymail.stop)
            settings = make_settings(url, f"{REDIS_BASE}/12", slack, purelymail)
            redis.Redis.from_url(settings.redis_url).flushdb()  # no attempts or queues of an earlier run
            for bench in args.names:
                slack.reset()
                purelymail.reset()
                BENCHMARKS[bench](settings, slack, purelymail)
    finally:
        from db.session import get_engine

        get_engine(url).dispose()
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return 0


if __name__ == "__main__":
    sys.exit(main())
