"""Loopback listeners shared by the target tests (tests/targets/test_*.py import this module
by name, as the plugin tests import tests/plugin_support.py: pytest puts a test file's own
directory on sys.path)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress


class BlackHole:
    """A loopback listener that never answers: the kernel completes each handshake and queues
    the connection. ``connections()`` takes them off the queue and says how many ever came,
    so a test proves "nothing was sent" by events, not by how long a call took."""

    def __init__(self, port: int = 0) -> None:
        self.sock = socket.create_server(("127.0.0.1", port), backlog=16)  # SO_REUSEADDR
        self.sock.setblocking(False)
        self.port: int = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []

    def connections(self) -> int:
        with suppress(BlockingIOError):
            while True:
                self.held.append(self.sock.accept()[0])
        return len(self.held)

    def __enter__(self) -> BlackHole:
        return self

    def __exit__(self, *exc: object) -> None:
        for sock in [*self.held, self.sock]:
            sock.close()


@contextmanager
def never_answering() -> Iterator[int]:
    """A port whose accept queue is full: new connections get no SYN-ACK, so connect times out."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        with suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    time.sleep(0.1)
    try:
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()
