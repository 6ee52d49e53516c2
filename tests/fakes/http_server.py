"""The HTTP server the fakes run on: threaded, with a listen backlog like a real service's,
so that a burst of concurrent clients is queued instead of reset."""

from __future__ import annotations

from http.server import ThreadingHTTPServer


class LoopbackHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
