"""P2: the mailbox sync of 10,000 mailboxes (500 changed) against a row-by-row ORM loop.
P3: one page of `mailbox list` with a search term over 10,000 cached mailboxes."""

from __future__ import annotations

import statistics
import time
import tracemalloc

from sqlalchemy import delete, select, text

from db.models import Mailbox
from db.session import session_scope
from purelyops import mailboxes
from purelyops.runtime import Runtime

N = 10_000
CHANGED = 500


def _prepare(rt: Runtime, purelymail) -> list[str]:
    """PurelyMail holds N mailboxes; the cache holds N, of which CHANGED are stale ones."""
    purelymail.list_user_cap = None
    purelymail.add_domain_direct("example.com")
    for i in range(N):
        purelymail.add_user_direct(f"user{i:05d}@example.com")
    stale = [f"gone{i:05d}@example.com" for i in range(CHANGED)]
    keep = [f"user{i:05d}@example.com" for i in range(CHANGED, N)]
    with session_scope(rt.database_url) as session:
        session.execute(delete(Mailbox))
        session.execute(text("INSERT INTO mailboxes (address, local_part, domain) "
                             "SELECT a, split_part(a, '@', 1), 'example.com' FROM unnest(CAST(:a AS text[])) AS a"),
                        {"a": keep + stale})
    return keep + stale


def _row_by_row(rt: Runtime) -> None:
    addresses = rt.purelymail.list_users()
    seen = set()
    with session_scope(rt.database_url) as session:
        for address in addresses:
            row = session.get(Mailbox, address)
            if row is None:
                local, domain = address.split("@")
                session.add(Mailbox(address=address, local_part=local, domain=domain))
            seen.add(address)
            session.flush()
        for row in session.scalars(select(Mailbox)):
            if row.address not in seen:
                session.delete(row)


def run(settings, slack, purelymail) -> None:
    rt = Runtime(settings)
    rounds, baseline, peaks = [], [], []
    for _ in range(5):
        _prepare(rt, purelymail)
        started = time.perf_counter()
        report = mailboxes.sync(rt, cap=None)
        rounds.append(time.perf_counter() - started)
        assert (len(report.added), len(report.removed), report.total) == (CHANGED, CHANGED, N), report
    _prepare(rt, purelymail)  # memory in a run of its own: tracing slows Python down
    tracemalloc.start()
    mailboxes.sync(rt, cap=None)
    peaks.append(tracemalloc.get_traced_memory()[1])
    tracemalloc.stop()
    for _ in range(1):
        _prepare(rt, purelymail)
        started = time.perf_counter()
        _row_by_row(rt)
        baseline.append(time.perf_counter() - started)
    s, b = statistics.median(rounds), statistics.median(baseline)
    print(f"P2 sync of {N:,} mailboxes ({CHANGED} changed): median {s * 1000:.0f} ms over {len(rounds)} runs; "
          f"row-by-row ORM loop {b * 1000:.0f} ms; {b / s:.0f}x faster; peak traced memory "
          f"{max(peaks) / 2**20:.1f} MB")
    print(f"P2 goals: <= 1 s {'met' if s <= 1 else 'NOT met'}; >= 20x {'met' if b / s >= 20 else 'NOT met'}; "
          f"<= 150 MB {'met' if max(peaks) <= 150 * 2**20 else 'NOT met'}")

    # P3: the page query and its two counts, as mailbox list runs them, timed by PostgreSQL itself.
    with session_scope(rt.database_url) as session:
        session.execute(text("ANALYZE mailboxes"))
    times = []
    for term in ("user01", "0042", "r099", "ser095"):
        total = 0.0
        with session_scope(rt.database_url) as session:
            for sql in (
                "SELECT address FROM mailboxes WHERE address ILIKE :p ORDER BY address LIMIT 20",
                "SELECT count(*) FROM mailboxes WHERE address ILIKE :p",
                "SELECT count(*) FROM mailboxes",
            ):
                plan = session.execute(text(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}"), {"p": f"%{term}%"}).scalar()
                total += plan[0]["Planning Time"] + plan[0]["Execution Time"]
        times.append(total)
        started = time.perf_counter()
        page = mailboxes.list_page(rt, term)
        wall = (time.perf_counter() - started) * 1000
        assert page.addresses
    print(f"P3 one page of mailbox list with a search term over {N:,} mailboxes: database time median "
          f"{statistics.median(times):.2f} ms (max {max(times):.2f} ms); whole list_page call {wall:.1f} ms")
    print(f"P3 goal <= 10 ms: {'met' if max(times) <= 10 else 'NOT met'}")
