"""P2: the mailbox sync of 10,000 mailboxes (500 changed) against a row-by-row ORM loop.
P3: one page of `mailbox list` with a search term over 10,000 cached mailboxes."""

from __future__ import annotations

import statistics
import time
import tracemalloc

from sqlalchemy import delete, event, select, text

from db.models import Mailbox
from db.session import get_engine, session_scope
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

    p3(rt)


def run_p3(settings, slack, purelymail) -> None:
    """P3 alone, over a freshly filled cache."""
    rt = Runtime(settings)
    _prepare(rt, purelymail)
    p3(rt)


P3_TERMS = ("user01", "0042", "r099", "ser095", "gone")


def p3(rt: Runtime) -> None:
    """P3: every query `list_page` runs (the first page and the next one of each search),
    caught as SQLAlchemy sends it and timed by PostgreSQL itself (EXPLAIN ANALYZE: planning
    and execution), and the whole call as the bot makes it."""
    with session_scope(rt.database_url) as session:
        session.execute(text("ANALYZE mailboxes"))
    engine = get_engine(rt.database_url)
    caught: list[tuple[str, object]] = []

    def catch(conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM mailboxes" in statement:
            caught.append((statement, parameters))

    db_times, walls = [], []
    for term in P3_TERMS:
        cursor = None
        for _ in range(2):
            event.listen(engine, "before_cursor_execute", catch)
            try:
                started = time.perf_counter()
                page = mailboxes.list_page(rt, term, after=cursor)
                walls.append((time.perf_counter() - started) * 1000)
            finally:
                event.remove(engine, "before_cursor_execute", catch)
            assert page.addresses, term
            db_times.append(_explained(engine, caught))
            caught.clear()
            cursor = page.next_cursor
            if cursor is None:
                break
    print(f"P3 one page of mailbox list with a search term over {N:,} mailboxes ({len(db_times)} pages: "
          f"{len(P3_TERMS)} terms, first and next page): database time median {statistics.median(db_times):.2f} ms "
          f"(max {max(db_times):.2f} ms); whole list_page call median {statistics.median(walls):.1f} ms "
          f"(max {max(walls):.1f} ms)")
    print(f"P3 goal database time <= 10 ms (max): {'met' if max(db_times) <= 10 else 'NOT met'}")


def _explained(engine, statements: list[tuple[str, object]]) -> float:
    """The planning and execution time PostgreSQL reports for these statements, in ms."""
    total = 0.0
    with engine.connect() as conn:
        cursor = conn.connection.cursor()
        for statement, parameters in statements:
            cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters)
            plan = cursor.fetchone()[0][0]
            total += plan["Planning Time"] + plan["Execution Time"]
        conn.rollback()
    return total
