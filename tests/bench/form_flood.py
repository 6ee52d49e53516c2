"""Many clients posting the credential form at once:
`python -m tests.bench.form_flood URL SECONDS [CLIENTS] [PAUSE]`.

CLIENTS (64) connections each post the form with a wrong password, and post again PAUSE
seconds (1) after the answer arrives, until SECONDS are over; every post carries a made-up
X-Forwarded-For (with FORWARDED_FOR_HOPS=1, each is a client of its own, so no attempt limit
stops them). It prints, as JSON, the
count of each status seen and how many posts were in flight at most. It runs in its own
process, so that it takes nothing from the process that measures the bot.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from collections import Counter
from urllib.parse import urlencode, urlsplit


async def flood(url: str, seconds: float, in_flight: int, pause: float) -> dict:
    parts = urlsplit(url)
    statuses: Counter[str] = Counter()
    state = {"now": 0, "most": 0}
    deadline = time.monotonic() + seconds

    async def poster(n: int) -> None:
        while time.monotonic() < deadline:
            body = urlencode({"full_name": f"Flood {n}", "email": f"flood{n}@old.example",
                              "password": f"wrong-{random.random()}"}).encode()
            forged = ".".join(str(random.randint(1, 254)) for _ in range(4))
            try:
                reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
            except OSError:
                statuses["connect failed"] += 1
                await asyncio.sleep(pause)
                continue
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
            try:
                writer.write((f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                              f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n"
                              f"X-Forwarded-For: {forged}\r\nConnection: close\r\n\r\n").encode() + body)
                await writer.drain()
                line = await asyncio.wait_for(reader.readline(), max(0.1, deadline - time.monotonic() + 30))
                statuses[line.split(b" ")[1].decode() if line.count(b" ") >= 1 else "no answer"] += 1
                await reader.read()
            except (OSError, asyncio.TimeoutError, IndexError):
                statuses["no answer"] += 1
            finally:
                state["now"] -= 1
                writer.close()
            await asyncio.sleep(pause)

    await asyncio.gather(*(poster(n) for n in range(in_flight)))
    return {"statuses": dict(statuses), "most_in_flight": state["most"]}


def main() -> None:
    url, seconds = sys.argv[1], float(sys.argv[2])
    in_flight = int(sys.argv[3]) if len(sys.argv) > 3 else 64
    pause = float(sys.argv[4]) if len(sys.argv) > 4 else 1.0
    print(json.dumps(asyncio.run(flood(url, seconds, in_flight, pause))))


if __name__ == "__main__":
    main()
