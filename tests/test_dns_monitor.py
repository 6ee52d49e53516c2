"""The DNS monitor: tiers, a bounded run, and exactly one alert per state change."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from rq import Queue

from db.models import Domain
from db.session import session_scope
from purelyops.runtime import Runtime
from tests.conftest import ALERTS, make_settings, run_burst_worker
from tests.fakes.dns_server import FakeDNS
from tests.fakes.purelymail_fake import FakePurelyMail
from tests.fakes.slack_fake import FakeSlack
from workers.dns_monitor import monitor
from workers.periodic import periodic_jobs

DOMAIN = "example.com"
T0 = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)

pytestmark = pytest.mark.usefixtures("slack_accepts_everything")


@pytest.fixture
def settings(dns_settings):
    return dns_settings


def alerts(slack_fake: FakeSlack) -> list[str]:
    return [m.text for m in slack_fake.messages(ALERTS)]


def test_one_alert_per_change_and_none_while_the_state_holds(rt: Runtime, slack_fake: FakeSlack,
                                                            purelymail_fake: FakePurelyMail, dns: FakeDNS) -> None:
    purelymail_fake.add_domain_direct(DOMAIN)
    dns.publish_purelymail(DOMAIN, purelymail_fake.ownership_code)
    assert monitor(rt, T0) == []  # the first watch sets the baseline
    assert monitor(rt, T0 + timedelta(hours=1)) == []  # healthy: not due again for a day
    assert len(dns.queries_for("_dmarc." + DOMAIN)) == 1

    dns.remove("purelymail1._domainkey." + DOMAIN)
    broke = monitor(rt, T0 + timedelta(hours=25))
    assert [(c.domain, c.broken, c.recovered) for c in broke] == [(DOMAIN, ["dkim1"], [])]
    assert alerts(slack_fake) == [f"DNS for {DOMAIN}: 1 record(s) now failing."]
    shown = str(slack_fake.messages(ALERTS)[0].blocks)
    assert "purelymail1._domainkey.example.com. CNAME key1.dkimroot.purelymail.com." in shown

    assert monitor(rt, T0 + timedelta(hours=25, minutes=10)) == []  # failing: re-checked only after 30 min
    assert monitor(rt, T0 + timedelta(hours=25, minutes=31)) == []  # re-checked, still failing: no repeat
    assert len(alerts(slack_fake)) == 1

    dns.publish_purelymail(DOMAIN, purelymail_fake.ownership_code)
    monitor(rt, T0 + timedelta(hours=26, minutes=2))
    assert alerts(slack_fake)[1:] == [f"DNS for {DOMAIN}: 1 passing again."]


def test_a_run_is_bounded_and_takes_never_checked_domains_first(database_url, redis_url, slack_fake: FakeSlack,
                                                                purelymail_fake: FakePurelyMail, dns: FakeDNS,
                                                                settings) -> None:
    rt = Runtime(make_settings(database_url, redis_url, slack_fake, purelymail_fake, dns_resolver=dns.spec,
                               dns_monitor_batch=2))
    for name in ("a.example", "b.example", "c.example"):
        purelymail_fake.add_domain_direct(name)
        dns.publish_purelymail(name, purelymail_fake.ownership_code)
    with session_scope(rt.database_url) as session:  # b was checked (and failed) an hour ago
        session.add(Domain(name="b.example", healthy=False, last_checked_at=T0 - timedelta(hours=1),
                           alert_state=["mx"]))
    monitor(rt, T0)
    with session_scope(rt.database_url) as session:
        checked = {d.name: d.last_checked_at for d in session.query(Domain)}
    assert checked == {"a.example": T0, "b.example": T0 - timedelta(hours=1), "c.example": T0}
    assert len(purelymail_fake.calls_to("listDomains")) == 1
    monitor(rt, T0 + timedelta(minutes=1))  # now b (failing, 61 min old) is due; a and c are not
    with session_scope(rt.database_url) as session:
        assert session.get(Domain, "b.example").last_checked_at == T0 + timedelta(minutes=1)
    assert alerts(slack_fake) == ["DNS for b.example: 1 passing again."]


def test_the_registered_job_runs_in_a_real_worker(rt: Runtime, settings, slack_fake: FakeSlack,
                                                  purelymail_fake: FakePurelyMail, dns: FakeDNS) -> None:
    purelymail_fake.add_domain_direct(DOMAIN)
    dns.publish_purelymail(DOMAIN, purelymail_fake.ownership_code)
    job = next(p for p in periodic_jobs(settings) if p.func.__name__ == "run_dns_monitor")
    assert job.interval == 300
    Queue(job.queue, connection=rt.redis).enqueue(job.func)
    result = run_burst_worker(settings)
    assert result.returncode == 0, result.stderr
    with session_scope(rt.database_url) as session:
        row = session.get(Domain, DOMAIN)
        assert row.healthy is True and row.alert_state == []
