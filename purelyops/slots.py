"""Migration slots: at most MAX_CONCURRENT_MIGRATIONS at once overall and
MAX_PER_SOURCE_HOST per old host, held in Redis so that the limits hold across every
worker machine. A slot expires unless its holder renews it (the runner's heartbeat), so a
worker that dies frees its slots by itself. One clock decides: Redis' own (TIME, read
inside the script), never a worker's, so a machine whose clock runs ahead cannot expire
live slots."""

from __future__ import annotations

from purelyops.runtime import Runtime

ALL_KEY = "purelyops:slots:all"
HOST_KEY = "purelyops:slots:host:{}"

# The start of a script that keeps time by Redis' clock: `now`, in milliseconds. Every budget
# shared across machines (these slots, the credential form's attempts and login checks) uses it.
REDIS_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS: all, host. ARGV: member, ttl (seconds), max_all, max_host. 1 = taken (or already held).
# Scores are expiry times in milliseconds by Redis' clock.
_ACQUIRE = REDIS_NOW + """
local expires = now + math.floor(tonumber(ARGV[2]) * 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], expires, ARGV[1]); redis.call('ZADD', KEYS[2], expires, ARGV[1]); return 1
end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[4]) then return -1 end
redis.call('ZADD', KEYS[1], expires, ARGV[1]); redis.call('ZADD', KEYS[2], expires, ARGV[1])
return 1
"""


def acquire(rt: Runtime, job_id: int, host: str, ttl: float) -> str | None:
    """Take (or renew) the job's slot: None when taken, else why not, in words."""
    s = rt.settings
    result = rt.redis.eval(_ACQUIRE, 2, ALL_KEY, HOST_KEY.format(host), str(job_id), ttl,
                           s.max_concurrent_migrations, s.max_per_source_host)
    if result == 1:
        return None
    if result == 0:
        return f"waiting: {s.max_concurrent_migrations} migrations are already running (MAX_CONCURRENT_MIGRATIONS)"
    return f"waiting: {s.max_per_source_host} migrations from {host} are already running (MAX_PER_SOURCE_HOST)"


def release(rt: Runtime, job_id: int, host: str) -> None:
    rt.redis.zrem(ALL_KEY, str(job_id))
    rt.redis.zrem(HOST_KEY.format(host), str(job_id))
