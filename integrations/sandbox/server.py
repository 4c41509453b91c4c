"""The sandbox as its own HTTP process (`python manage.py sandbox`)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from integrations.sandbox import control
from integrations.sandbox.core import Sandbox, SandboxResponse, SandboxTimeout

log = logging.getLogger("sandbox")


def make_handler(sandbox: Sandbox) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body leave in separate writes: without TCP_NODELAY every answer waits
        # ~40 ms for the client's delayed ACK.
        disable_nagle_algorithm = True

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k: v for k, v in self.headers.items()}
            path = urlsplit(self.path).path
            try:
                if path == "/" or path.startswith("/_sandbox"):
                    result = control.handle(sandbox, self.command, self.path, headers, body)
                else:
                    url = sandbox.public_url + self.path
                    result = sandbox.handle_url(self.command, url, headers, body)
            except SandboxTimeout:
                # Hold the connection past any sane client timeout, then drop it.
                time.sleep(sandbox.config.get("timeout_seconds", 30))
                self.close_connection = True
                return
            except Exception:  # the sandbox must answer, never hang a client
                log.exception("sandbox error on %s %s", self.command, self.path)
                result = SandboxResponse(500, {"success": False, "error": "sandbox error"})
            self._write(result)

        def _write(self, result: SandboxResponse) -> None:
            content = result.content()
            self.send_response(result.status)
            self.send_header("Content-Type", result.content_type)
            self.send_header("Content-Length", str(len(content)))
            for name, value in result.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(content)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        def log_message(self, format: str, *args) -> None:
            log.debug("%s - %s", self.address_string(), format % args)

    return Handler


def run(sandbox: Sandbox, host: str, port: int) -> None:
    server = ThreadingHTTPServer((host, port), make_handler(sandbox))
    server.daemon_threads = True
    log.info("sandbox listening on http://%s:%s (public %s)", host, port, sandbox.public_url)
    try:
        server.serve_forever()
    finally:
        server.server_close()


@contextmanager
def serve_in_thread(build: Callable[[str], Sandbox]) -> Iterator[Sandbox]:
    """A sandbox served over HTTP on a free local port from a thread, for tests and benches.

    The port is bound first because the sandbox hands out its own address (api_domain, the
    consent form's action): `build(url)` makes the sandbox for that address.
    """
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    server.daemon_threads = True
    url = f"http://127.0.0.1:{server.server_address[1]}"
    sandbox = build(url)
    sandbox.url = url
    server.RequestHandlerClass = make_handler(sandbox)
    thread = threading.Thread(target=server.serve_forever, name="sandbox", daemon=True)
    thread.start()
    try:
        yield sandbox
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
