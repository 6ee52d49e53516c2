"""Migration slots: at most MAX_CONCURRENT_MIGRATIONS at once overall and
MAX_PER_SOURCE_HOST per old host, held in Redis so that the limits hold across every
worker machine. A slot expires unless its holder renews it (the runner's heartbeat), so a
worker that dies frees its slots by itself."""

from __future__ import annotations

import time

from purelyops.runtime import Runtime

ALL_KEY = "purelyops:slots:all"
HOST_KEY = "purelyops:slots:host:{}"

# KEYS: all, host. ARGV: member, now, expires, max_all, max_host. 1 = taken (or already held).
_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[2])
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1]); redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1]); return 1
end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return 0 end
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[5]) then return -1 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1]); redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
return 1
"""


def acquire(rt: Runtime, job_id: int, host: str, ttl: float) -> str | None:
    """Take (or renew) the job's slot: None when taken, else why not, in words."""
    now = time.time()
    s = rt.settings
    result = rt.redis.eval(_ACQUIRE, 2, ALL_KEY, HOST_KEY.format(host), str(job_id), now, now + ttl,
                           s.max_concurrent_migrations, s.max_per_source_host)
    if result == 1:
        return None
    if result == 0:
        return f"waiting: {s.max_concurrent_migrations} migrations are already running (MAX_CONCURRENT_MIGRATIONS)"
    return f"waiting: {s.max_per_source_host} migrations from {host} are already running (MAX_PER_SOURCE_HOST)"


def release(rt: Runtime, job_id: int, host: str) -> None:
    rt.redis.zrem(ALL_KEY, str(job_id))
    rt.redis.zrem(HOST_KEY.format(host), str(job_id))
