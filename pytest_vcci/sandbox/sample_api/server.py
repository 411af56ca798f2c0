"""The sample API's HTTPS server (stdlib ThreadingHTTPServer + ssl) and its command line."""

from __future__ import annotations

import argparse
import signal
import socket
import ssl
import sys
import threading
import warnings
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pytest_vcci.sandbox.sample_api.app import App, Request, Response, error
from pytest_vcci.sandbox.sample_api.config import load_config

MAX_BODY = 10 * 1024 * 1024
TLS_VERSIONS = {
    "1.0": ssl.TLSVersion.TLSv1,
    "1.1": ssl.TLSVersion.TLSv1_1,
    "1.2": ssl.TLSVersion.TLSv1_2,
    "1.3": ssl.TLSVersion.TLSv1_3,
}


def server_context(
    cert: str, key: str, tls_min: str = "1.2", tls_max: str = "1.3"
) -> ssl.SSLContext:
    """A server context for TLS ``tls_min``..``tls_max``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with warnings.catch_warnings():
        # TLSVersion.TLSv1/TLSv1_1 are deprecated: serving them is the point of a legacy test.
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = TLS_VERSIONS[tls_min]
        context.maximum_version = TLS_VERSIONS[tls_max]
    if TLS_VERSIONS[tls_min] < ssl.TLSVersion.TLSv1_2:
        # OpenSSL 3 refuses TLS 1.0/1.1 at the default security level (their handshakes sign
        # with SHA-1); level 0 lets the sandbox play a legacy server.
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
    context.set_alpn_protocols(["http/1.1"])
    return context


class ApiServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default listen backlog is 5: a load probe opening 10 connections at once
    # would see dropped SYNs and the kernel's 1 s retransmit as latency. nginx uses 511.
    request_queue_size = 511

    def __init__(self, address: tuple[str, int], app: App, context: ssl.SSLContext) -> None:
        self.app = app
        self.context = context
        super().__init__(address, ApiHandler)

    def get_request(self) -> tuple[Any, Any]:
        sock, address = super().get_request()
        # Headers and body go out as two TLS records; without NODELAY, Nagle plus delayed ACKs
        # add ~40 ms to every keep-alive response.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # The handshake runs in the connection's own thread (ApiHandler.setup): a client that
        # never completes it must not block the accept loop.
        return self.context.wrap_socket(
            sock, server_side=True, do_handshake_on_connect=False
        ), address

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        # TLS probes with old versions and clients hanging up are routine, not server errors.
        if isinstance(exc, ssl.SSLError | ConnectionError | TimeoutError | socket.timeout):
            return
        self.app.log.write(
            {
                "level": "error",
                "event": "connection_error",
                "client_ip": str(client_address[0]),
                "error": repr(exc),
            }
        )


class ApiHandler(BaseHTTPRequestHandler):
    server: ApiServer
    protocol_version = "HTTP/1.1"
    server_version = "vcci-api"
    timeout = 30  # a silent client releases its thread after this

    def version_string(self) -> str:
        return self.server_version  # do not advertise the Python version

    def setup(self) -> None:
        super().setup()
        self.connection.do_handshake()

    def do_GET(self) -> None:
        self.serve()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET

    def serve(self) -> None:
        raw_length = self.headers.get("Content-Length", "0") or "0"
        chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        request = Request.build(
            self.command, self.path, dict(self.headers.items()), b"", self.client_address[0]
        )
        if chunked or not raw_length.isdigit():
            self.close_connection = True
            self.send(error(411, "length_required", "Send a Content-Length header", request))
            return
        if int(raw_length) > MAX_BODY:
            self.close_connection = True
            self.send(error(413, "payload_too_large", "Request body too large", request))
            return
        request.body = self.rfile.read(int(raw_length))
        self.send(self.server.app.handle(request))

    def send(self, response: Response) -> None:
        self.send_response(response.status)
        headers = {
            "Content-Type": response.content_type,
            **response.headers,
            "Content-Length": str(len(response.body)),
        }
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD" and response.status not in (204, 304):
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: every request is logged as JSON by the app, with its request ID."""


class MetricsHandler(BaseHTTPRequestHandler):
    """The internal scrape port: /metrics only, plain HTTP, as pods expose it to Prometheus."""

    server: MetricsServer

    def do_GET(self) -> None:
        if self.path.partition("?")[0] != "/metrics":
            self.send_error(404)
            return
        body, content_type = self.server.app.metrics.exposition()
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: scrapes every few seconds would drown the server log."""


class MetricsServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], app: App) -> None:
        self.app = app
        super().__init__(address, MetricsHandler)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m pytest_vcci.sandbox.sample_api",
        description="Sample GL-VCCI API (HTTPS) for the sandbox.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", required=True, help="PEM: leaf + intermediates")
    parser.add_argument("--key", required=True, help="PEM private key")
    parser.add_argument("--config", required=True, help="JSON text or the path of a JSON file")
    parser.add_argument("--tls-min", choices=sorted(TLS_VERSIONS), default="1.2")
    parser.add_argument("--tls-max", choices=sorted(TLS_VERSIONS), default="1.3")
    parser.add_argument("--access-log", help="JSON access log (overrides config access_log)")
    parser.add_argument(
        "--metrics-port", type=int, help="also serve /metrics over plain HTTP on this port"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    config = load_config(args.config)
    if args.access_log:
        from dataclasses import replace

        config = replace(config, access_log=args.access_log)
    from prometheus_client import disable_created_metrics

    disable_created_metrics()  # *_created series are noise for the checks; this process only
    app = App(config)
    server = ApiServer(
        (args.host, args.port), app, server_context(args.cert, args.key, args.tls_min, args.tls_max)
    )
    if args.metrics_port:
        metrics = MetricsServer((args.host, args.metrics_port), app)
        threading.Thread(target=metrics.serve_forever, daemon=True).start()
    # SIGTERM (Component.stop) ends serve_forever through SystemExit, closing the socket.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(
        f"sample API listening on https://{args.host}:{args.port} "
        f"(TLS {args.tls_min}-{args.tls_max})",
        flush=True,
    )
    try:
        server.serve_forever()
    finally:
        server.server_close()
        app.log.close()
    return 0
