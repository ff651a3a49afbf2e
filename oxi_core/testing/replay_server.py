"""A loopback server that answers with recorded HTTP responses, byte for byte.

For checking a client against a real captured payload (status line, headers, body) such as
``fixtures/agent-cli/litellm_nonstream_headers_and_body.txt``, or against a broken one (a body
that is not JSON). Responses are served in order; the last one repeats. ``Content-Length`` is
recomputed and ``Transfer-Encoding`` dropped, since captures record the decoded body.

    with ReplayServer([Path("capture.txt").read_bytes()]) as server:
        httpx.post(server.url("/v1/chat/completions"), json={...})
        server.requests[0].body  # the JSON the client sent
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler
from types import TracebackType
from typing import Any, Self

import attrs

from oxi_core.testing.model_server import LOCALHOST, LoopbackHTTPServer


@attrs.frozen
class ReplayedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


def parse_capture(raw: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
    """(status, headers, body) of a captured response: status line, headers, blank line, body."""
    text = raw.replace(b"\r\n", b"\n")
    head, _, body = text.partition(b"\n\n")
    lines = head.decode("latin-1").split("\n")
    status = int(lines[0].split()[1])
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.lower() in ("content-length", "transfer-encoding", "connection"):
            continue
        headers.append((name.strip(), value.strip()))
    return status, headers, body.rstrip(b"\n")


class ReplayServer:
    def __init__(self, responses: Sequence[bytes]) -> None:
        if not responses:
            raise ValueError("ReplayServer needs at least one recorded response")
        self.responses = [parse_capture(r) for r in responses]
        self.requests: list[ReplayedRequest] = []
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body: Any = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                with owner._lock:
                    owner.requests.append(ReplayedRequest(
                        self.command, self.path, {k.lower(): v for k, v in self.headers.items()},
                        body))
                    index = min(len(owner.requests) - 1, len(owner.responses) - 1)
                status, headers, payload = owner.responses[index]
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = _answer
            do_POST = _answer

        self._server = LoopbackHTTPServer((LOCALHOST, 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://{LOCALHOST}:{self._server.server_address[1]}"

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
