"""P6: one domain's 7-record DNS check against a DNS server that delays every answer by
100 ms. Goal ≤ 150 ms; asked one after another, the same questions take ~700 ms."""

from __future__ import annotations

import statistics
import time

import dns.name
import dns.rdatatype

from purelyops.dns_query import Budget, ServerPlan, resolve
from purelyops.dnscheck import check_domain, expected_records
from tests.fakes.dns_server import FakeDNS

ROUNDS = 15


def dns_name(text: str) -> dns.name.Name:
    return dns.name.from_text(text + ".")
CODE = "purelymail_ownership_proof=bench"


def run(settings, slack, purelymail) -> None:
    with FakeDNS() as server:
        server.publish_purelymail("example.com", CODE)
        server.delay = 0.1
        concurrent, sequential = [], []
        for _ in range(ROUNDS):
            started = time.perf_counter()
            result = check_domain("example.com", CODE, resolver_spec=server.spec, timeout=5)
            concurrent.append(time.perf_counter() - started)
            assert result.ok, result.summary()
        questions = [(dns_name(e.name), dns.rdatatype.from_text(e.rrtype))
                     for e in expected_records("example.com", CODE)]
        for _ in range(5):
            plan = ServerPlan.from_spec(server.spec)
            started = time.perf_counter()
            for qname, rdtype in questions:
                resolve(plan, qname, rdtype, Budget(5), follow=False)
            sequential.append(time.perf_counter() - started)
    c, s = statistics.median(concurrent) * 1000, statistics.median(sequential) * 1000
    print(f"P6 check of 7 records, 100 ms per answer: median {c:.0f} ms, max {max(concurrent) * 1000:.0f} ms "
          f"over {ROUNDS} runs; the same questions one after another: median {s:.0f} ms; ratio {s / c:.1f}x")
    print(f"P6 goal median <= 150 ms: {'met' if c <= 150 else 'NOT met'}")
