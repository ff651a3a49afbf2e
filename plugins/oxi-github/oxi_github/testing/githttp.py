"""git's own smart-HTTP server (`git http-backend`, a CGI program) behind the loopback GitHub.

One run of the backend per request: the request body on stdin, the CGI environment git needs,
and its CGI answer (headers, a blank line, the body) parsed back into a status, headers and body.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

import attrs

BACKEND_TIMEOUT_S = 120.0


@attrs.frozen
class CgiAnswer:
    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    body: bytes


def git_http_backend(
    *, project_root: Path, method: str, path_info: str, query: str, body: bytes,
    headers: Mapping[str, str], remote_user: str, remote_addr: str = "127.0.0.1",
) -> CgiAnswer:
    """Run `git http-backend` for one request against the repositories under ``project_root``."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(project_root),
        "GIT_PROJECT_ROOT": str(project_root),
        "GIT_HTTP_EXPORT_ALL": "1",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "REQUEST_METHOD": method,
        "PATH_INFO": path_info,
        "QUERY_STRING": query,
        "CONTENT_TYPE": headers.get("content-type", ""),
        "CONTENT_LENGTH": str(len(body)),
        "REMOTE_USER": remote_user,
        "REMOTE_ADDR": remote_addr,
        "GATEWAY_INTERFACE": "CGI/1.1",
        "SERVER_PROTOCOL": "HTTP/1.1",
    }
    # The protocol version negotiation and a gzip-compressed request body are the backend's to
    # read, as headers a CGI program sees.
    for header, variable in (("git-protocol", "HTTP_GIT_PROTOCOL"),
                             ("content-encoding", "HTTP_CONTENT_ENCODING")):
        if header in headers:
            env[variable] = headers[header]
    completed = subprocess.run(
        ["git", "http-backend"], input=body, capture_output=True, env=env,
        timeout=BACKEND_TIMEOUT_S, check=False,
    )
    return parse_cgi(completed.stdout, completed.stderr)


def parse_cgi(output: bytes, stderr: bytes = b"") -> CgiAnswer:
    head, separator, body = output.partition(b"\r\n\r\n")
    if not separator:
        head, separator, body = output.partition(b"\n\n")
    if not separator:
        message = stderr.decode("utf-8", "replace").strip() or "git http-backend said nothing"
        return CgiAnswer(500, "Internal Server Error", (("Content-Type", "text/plain"),),
                         message.encode())
    status, reason = 200, "OK"
    headers: list[tuple[str, str]] = []
    for line in head.decode("latin-1").splitlines():
        name, _, value = line.partition(":")
        if name.lower() == "status":
            code, _, text = value.strip().partition(" ")
            status, reason = int(code), text or reason
        elif name:
            headers.append((name.strip(), value.strip()))
    return CgiAnswer(status, reason, tuple(headers), body)
