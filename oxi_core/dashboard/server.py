"""The dashboard over HTTP (the standard library's threading server): GET only, every answer
read from the read-only ledger, assets from the package, nothing from anywhere else.

Bound to a loopback address, it also refuses requests whose Host is not a loopback name, so a
web page elsewhere cannot read the ledger through DNS rebinding.
"""

from __future__ import annotations

import ipaddress
import json
import re
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from oxi_core.dashboard.app import API, ASSETS, Dashboard, asset
from oxi_core.dashboard.queries import EventFilter
from oxi_core.dashboard.render import Links

CONTENT_TYPES = {"css": "text/css; charset=utf-8", "js": "text/javascript; charset=utf-8"}
SECURITY_HEADERS = {
    # Only the page's own script and stylesheet run or apply: text that slipped through as
    # markup could still not execute.
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "img-src 'self'; connect-src 'self'; form-action 'self'; "
                               "base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
TASK_PATH = re.compile(r"/task/([^/]+)")
TASK_API_PATH = re.compile(r"/api/task/([^/]+)\.json")


def is_loopback(host: str) -> bool:
    """Whether every address ``host`` names is a loopback address (a name is resolved)."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(found) and all(ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_loopback
                               for info in found)


class DashboardServer(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's backlog of 5 overflows when a browser opens its connections at once
    # while the accept loop waits for the CPU; the kernel then resets some of them.
    request_queue_size = 128

    def __init__(self, dashboard: Dashboard, host: str, port: int) -> None:
        self.dashboard = dashboard
        self.links = Links()
        family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
        self.address_family = family
        super().__init__((host.strip("[]"), port), Handler)
        self.loopback_only = is_loopback(host)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def url(self) -> str:
        host = str(self.server_address[0])
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.port}/"


class Handler(BaseHTTPRequestHandler):
    server: DashboardServer
    protocol_version = "HTTP/1.1"
    server_version = "oxi-dashboard"

    def setup(self) -> None:
        super().setup()
        # Headers and body go out as two writes: with Nagle's algorithm on, a keep-alive
        # client's delayed ACK held every answer back about 40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the operator's terminal is not an access log."""

    def do_HEAD(self) -> None:
        self.do_GET(head=True)

    def do_GET(self, head: bool = False) -> None:
        if not self._host_allowed():
            self._send(403, "text/plain; charset=utf-8",
                       b"oxi dashboard answers only to localhost on this address\n", head)
            return
        parts = urlsplit(self.path)
        path, query = parts.path, parse_qs(parts.query)
        try:
            status, content_type, body = self._route(path, query)
        except Exception as error:  # never a dropped connection: say what went wrong
            status, content_type = 500, "text/plain; charset=utf-8"
            body = f"oxi dashboard: {type(error).__name__}: {error}\n".encode()
        self._send(status, content_type, body, head)

    def _route(self, path: str, query: dict[str, list[str]]) -> tuple[int, str, bytes]:
        app, links = self.server.dashboard, self.server.links
        html = "text/html; charset=utf-8"
        wanted = EventFilter.parse(query)
        if path in ("/", "/index.html"):
            return 200, html, app.overview(links, wanted, live=True).encode()
        if path.startswith("/assets/"):
            name = path.removeprefix("/assets/")
            if name in ASSETS:
                return 200, CONTENT_TYPES[name.rsplit(".", 1)[1]], asset(name)
        if path.startswith("/panel/"):
            name = path.removeprefix("/panel/")
            if name in (*API, "task"):
                task_id = (query.get("id") or [""])[0]
                return 200, html, app.panel_html(links, name, wanted=wanted,
                                                 task_id=task_id).encode()
        if path == "/api/live.json":
            try:
                after = int((query.get("after") or ["0"])[0])
            except ValueError:
                after = 0
            return self._json(200, app.live(after))
        if path.startswith("/api/") and path.endswith(".json"):
            name = path.removeprefix("/api/").removesuffix(".json")
            if name in API:
                panel = app.read(name, wanted=wanted)
                return self._json(200 if panel.doc is not None else 500,
                                  app.document(name, panel))
        if match := TASK_API_PATH.fullmatch(path):
            task_id = unquote(match.group(1))
            panel = app.read("task", task_id=task_id)
            status = 200 if panel.doc is not None else (
                404 if panel.error == f"no task {task_id} in the ledger" else 500)
            return self._json(status, app.document("task", panel))
        if match := TASK_PATH.fullmatch(path):
            status, page = app.task_page(links, unquote(match.group(1)), live=True)
            return status, html, page.encode()
        if path == "/favicon.ico":
            return 204, "text/plain", b""
        info = app.info(live=False)
        from oxi_core.dashboard.render import not_found

        return 404, html, not_found(info, links, f"Nothing at {path}.").encode()

    def _json(self, status: int, doc: dict[str, Any]) -> tuple[int, str, bytes]:
        return status, "application/json", json.dumps(doc, default=str).encode()

    def _host_allowed(self) -> bool:
        if not self.server.loopback_only:
            return True
        host = (self.headers.get("Host") or "").strip().lower()
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        return name in LOOPBACK_NAMES

    def _send(self, status: int, content_type: str, body: bytes, head: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)
