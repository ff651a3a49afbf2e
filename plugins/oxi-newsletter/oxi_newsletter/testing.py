"""A loopback web site for testing newsletter sources (here and in oxi's end-to-end scans).

It serves what a test puts at each path, with ETag and Last-Modified validators and real 304
answers to conditional GETs, redirects, error statuses and slow answers, and records every
request. Leaving the ``with`` block stops it, even with slow answers in flight.

    with Site() as site:
        site.put("/feed", feed_xml, content_type="application/rss+xml")
        NewsletterSource(publication="latent_space", base_url=site.base_url).fetch(since)
        site.requests[-1].status  # 200, then 304 on the next scan
"""

from __future__ import annotations

import hashlib
import threading
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler
from types import TracebackType
from typing import Any, Self

import attrs

from oxi_core.testing.model_server import LOCALHOST, LoopbackHTTPServer


@attrs.frozen
class Resource:
    body: bytes
    content_type: str = "text/html; charset=utf-8"
    status: int = 200
    etag: str = ""
    last_modified: str = ""
    delay_s: float = 0.0
    location: str = ""  # for 3xx


@attrs.frozen
class SiteRequest:
    path: str  # with the query string
    headers: dict[str, str]
    status: int


class Site:
    def __init__(self) -> None:
        self.resources: dict[str, Resource] = {}
        self.requests: list[SiteRequest] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                owner._answer(self)

        self._server = LoopbackHTTPServer((LOCALHOST, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://{LOCALHOST}:{self._server.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def put(self, path: str, body: bytes | str, *, content_type: str = "text/html; "
            "charset=utf-8", status: int = 200, etag: bool = True, last_modified: bool = True,
            delay_s: float = 0.0) -> Resource:
        """Serve ``body`` at ``path`` (a query string makes a route of its own), with an ETag
        (its digest) and a Last-Modified (now) unless told otherwise."""
        data = body.encode() if isinstance(body, str) else body
        resource = Resource(
            data, content_type, status,
            etag=f'"{hashlib.sha256(data).hexdigest()[:16]}"' if etag else "",
            last_modified=formatdate(usegmt=True) if last_modified else "",
            delay_s=delay_s,
        )
        with self._lock:
            self.resources[path] = resource
        return resource

    def redirect(self, path: str, to: str, status: int = 301) -> None:
        with self._lock:
            self.resources[path] = Resource(b"", status=status, location=to)

    def paths(self) -> list[str]:
        with self._lock:
            return [request.path for request in self.requests]

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        with self._lock:
            path = handler.path
            resource = self.resources.get(path) or self.resources.get(path.split("?", 1)[0])
        if resource is not None and resource.delay_s:
            self._stopping.wait(resource.delay_s)
        status = 404 if resource is None else resource.status
        headers: list[tuple[str, str]] = []
        body = b"not found" if resource is None else resource.body
        if resource is not None:
            if resource.location:
                headers.append(("Location", resource.location))
            if status == 200 and _not_modified(handler, resource):
                status, body = 304, b""
            if resource.etag:
                headers.append(("ETag", resource.etag))
            if resource.last_modified:
                headers.append(("Last-Modified", resource.last_modified))
            headers.append(("Content-Type", resource.content_type))
        with self._lock:
            self.requests.append(SiteRequest(path, dict(handler.headers.items()), status))
        try:
            handler.send_response(status)
            for name, value in headers:
                handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            if body:
                handler.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (its timeout): nothing to answer

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


def _not_modified(handler: BaseHTTPRequestHandler, resource: Resource) -> bool:
    tag = handler.headers.get("If-None-Match")
    if tag is not None:
        return bool(resource.etag) and tag == resource.etag
    since = handler.headers.get("If-Modified-Since")
    if since and resource.last_modified:
        try:
            return parsedate_to_datetime(resource.last_modified) <= parsedate_to_datetime(since)
        except (TypeError, ValueError):
            return False
    return False
