"""TLS endpoints on loopback for the suite-level TLS tests (tests/suites/test_broken_tls.py
imports it by name, as the broken-variant tests import variants.py).

An endpoint serves one leaf of the sandbox PKI (pytest_vcci/sandbox/pki.py) from a thread of
the test process, so the suites, run in a pytest subprocess, reach it like any server. Weak
material (RSA 1024, SHA-1, MD5) is served at SECLEVEL=0, as a misconfigured server would.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

from pytest_vcci.sandbox.pki import LeafFiles

WEAK_OK = "DEFAULT:@SECLEVEL=0"


@contextmanager
def serving(handle: Callable[[socket.socket], None]) -> Iterator[int]:
    """A loopback listener calling ``handle`` per connection in a thread; yields its port."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def one(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            # The client under test hangs up or refuses: that is its job, not an error here.
            with suppress(Exception):
                handle(conn)

    def accept_loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=one, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept_loop, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=2)
        listener.close()


@contextmanager
def stapling_endpoint(leaf: LeafFiles, ocsp_der: bytes) -> Iterator[int]:
    """TLS 1.2 and 1.3 with ``ocsp_der`` stapled (pyOpenSSL: Python's ssl cannot staple)."""
    from OpenSSL import SSL

    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    context.set_min_proto_version(SSL.TLS1_2_VERSION)
    context.set_cipher_list(WEAK_OK.encode())
    context.use_certificate_chain_file(str(leaf.fullchain))
    context.use_privatekey_file(str(leaf.key))
    context.set_ocsp_server_callback(lambda conn, data: ocsp_der)

    def handle(conn: socket.socket) -> None:
        conn.setblocking(True)
        tls = SSL.Connection(context, conn)
        tls.set_accept_state()
        tls.do_handshake()
        with suppress(SSL.Error):
            tls.recv(1)

    with serving(handle) as port:
        yield port


@contextmanager
def plain_endpoint(leaf: LeafFiles) -> Iterator[int]:
    """TLS 1.2 and 1.3 without stapling, through the system's OpenSSL (Python's ssl): the one
    that still serves a certificate on a curve under 256 bits, which pyOpenSSL's no longer
    does."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(WEAK_OK)
    context.load_cert_chain(leaf.fullchain, leaf.key)

    def handle(conn: socket.socket) -> None:
        with context.wrap_socket(conn, server_side=True) as tls:
            tls.recv(1)  # hold the connection until the client closes it

    with serving(handle) as port:
        yield port
