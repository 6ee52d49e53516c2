"""A load generator for P1: `python -m tests.bench.load URL SECRET < bodies.json`.

Opens one connection per body, then sends every signed request at once and prints, as
JSON, each one's time from its last byte out to the response's first byte in.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from urllib.parse import urlsplit

from tests.slack_requests import sign


async def send_all(url: str, secret: str, bodies: list[bytes]) -> list[float]:
    parts = urlsplit(url)
    conns = [await asyncio.open_connection(parts.hostname, parts.port) for _ in bodies]
    ts = int(time.time())
    requests = [
        (f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
         f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n"
         f"X-Slack-Request-Timestamp: {ts}\r\nX-Slack-Signature: {sign(secret, ts, body)}\r\n"
         f"Connection: close\r\n\r\n").encode() + body
        for body in bodies
    ]

    async def one(conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], request: bytes) -> float:
        reader, writer = conn
        writer.write(request)
        await writer.drain()
        start = time.perf_counter()
        status = await reader.readline()
        elapsed = time.perf_counter() - start
        rest = await reader.read()
        writer.close()
        if b" 200 " not in status:
            raise SystemExit(f"the bot answered {status!r}: {rest[-300:]!r}")
        return elapsed

    return list(await asyncio.gather(*(one(c, r) for c, r in zip(conns, requests, strict=True))))


def main() -> None:
    bodies = [body.encode() for body in json.load(sys.stdin)]
    print(json.dumps(asyncio.run(send_all(sys.argv[1], sys.argv[2], bodies))))


if __name__ == "__main__":
    main()
