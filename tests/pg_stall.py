"""A TCP proxy in front of a real server (PostgreSQL, Dovecot) that can stall: while stalled
it still accepts connections but forwards nothing either way, as a network partition or a
database frozen by I/O looks to its clients; afterwards everything it held goes through.
Or it can trickle: the server's answers reach the client a byte at a time, each well within
any read timeout, as a server on a link that barely moves does."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

from tests.conftest import free_port


class StallingProxy:
    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._open = threading.Event()
        self._open.set()
        self.trickle: float | None = None  # seconds between two bytes of an answer, while set
        # (bytes, hook): the hook is called, once, before a request holding those bytes goes on
        self.before: tuple[bytes, Callable[[], None]] | None = None
        self._before_lock = threading.Lock()
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._listener.settimeout(0.2)
        self._thread = threading.Thread(target=self._accept, daemon=True, name="pg-proxy")
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        self._open.wait()
        try:
            server = socket.create_connection(self.target)
        except OSError:
            client.close()
            return
        for a, b, answers in ((client, server, False), (server, client, True)):
            threading.Thread(target=self._pump, args=(a, b, answers), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, answers: bool) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                self._open.wait()
                if not answers and self.before is not None and self.before[0] in data:
                    with self._before_lock:
                        hook, self.before = (self.before[1] if self.before else None), None
                    if hook is not None:
                        hook()
                while answers and self.trickle and data:
                    dst.sendall(data[:1])
                    data = data[1:]
                    time.sleep(self.trickle)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stall(self) -> None:
        self._open.clear()

    def resume(self) -> None:
        self._open.set()

    def close(self) -> None:
        self._stop.set()
        self._open.set()
        self._listener.close()
