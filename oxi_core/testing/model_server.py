"""Scripted model servers: the scenario vocabulary and the HTTP machinery they share.

A scripted model server stands in for a model provider on ``127.0.0.1`` so that a real agent CLI
(Claude Code, Codex, ...) can be run offline and deterministically. What the "model" answers is
written up front as a :class:`Script`: one :data:`Step` per model turn. Each request that is a
real turn consumes the next step; once the script is used up, every further turn gets
:attr:`Script.final`.

The vocabulary is neutral where it can be, so one scenario drives either server:

    script = Script([ToolCall.write("hello.txt", "hi\\n"), Text("done")])

:class:`~oxi_core.testing.anthropic_server.AnthropicServer` renders the first step as a Claude
Code ``Write`` tool call, :class:`~oxi_core.testing.openai_server.OpenAIServer` as a Codex
``apply_patch`` (or ``exec_command``) call.

Steps:

- :class:`Reply`: one model message made of :data:`Part` s (:class:`Text`, :class:`Reasoning`,
  tool calls), with its :class:`Usage`, optionally streamed slowly (``chunk_delay``). A bare part
  in a script is shorthand for a reply holding only that part.
- :class:`ErrorReply`: an HTTP error status with the provider's error body.
- :class:`Stall`: start streaming a reply, then go silent and keep the connection open until the
  server is stopped.
- :class:`Disconnect`: start streaming a reply, then drop the connection mid-stream.

Servers are context managers; leaving the block (or :meth:`ScriptedModelServer.stop`) shuts the
server down promptly, even with streams stalled.
"""

from __future__ import annotations

import abc
import contextlib
import gzip
import json
import socket
import struct
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar, Literal, Self, TypeAlias

import attrs

__all__ = [
    "LOCALHOST",
    "CustomToolCall",
    "Disconnect",
    "ErrorReply",
    "JSONResponse",
    "LoopbackHTTPServer",
    "NamedToolCall",
    "NoAnswer",
    "Part",
    "Reasoning",
    "RecordedRequest",
    "Reply",
    "Response",
    "RunCommand",
    "Script",
    "ScriptedModelServer",
    "Stall",
    "Step",
    "StepLike",
    "StreamResponse",
    "Text",
    "ToolCall",
    "Usage",
    "WriteFile",
    "new_id",
    "split_text",
    "sse_event",
]

LOCALHOST = "127.0.0.1"
"""The only address scripted model servers bind to."""


def new_id(prefix: str) -> str:
    """A fresh identifier such as ``msg_3f2a...``: *prefix*, an underscore, 24 hex digits."""
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


# --------------------------------------------------------------------------------------------
# Scenario vocabulary
# --------------------------------------------------------------------------------------------


@attrs.frozen
class Usage:
    """Token counts a reply reports.

    Each server maps them onto its API's fields: Anthropic ``input_tokens``,
    ``cache_read_input_tokens`` (``cached_tokens``), ``cache_creation_input_tokens``,
    ``output_tokens``; OpenAI ``input_tokens`` / ``prompt_tokens``,
    ``input_tokens_details.cached_tokens``, ``output_tokens`` / ``completion_tokens``,
    ``output_tokens_details.reasoning_tokens``.
    """

    input_tokens: int = 100
    output_tokens: int = 20
    cached_tokens: int = 0
    cache_creation_tokens: int = 0
    reasoning_tokens: int = 0


class Part:
    """One piece of a model message: text, reasoning or a tool call."""

    __slots__ = ()


@attrs.frozen
class Text(Part):
    """Assistant text."""

    text: str


@attrs.frozen
class Reasoning(Part):
    """Visible reasoning: an OpenAI ``reasoning`` item (as a summary) or an Anthropic
    ``thinking`` block."""

    text: str


class ToolCall(Part):
    """Base of the tool-call parts, with a factory for each kind.

    ``ToolCall.write(path, content)`` and ``ToolCall.run(command)`` are neutral: every server
    renders them as its CLI's own tool. ``ToolCall.named(...)`` calls a tool by its exact name
    and ``ToolCall.custom(...)`` / ``ToolCall.apply_patch(...)`` are OpenAI freeform tools.
    """

    __slots__ = ()

    @staticmethod
    def write(path: str, content: str) -> WriteFile:
        """Create or overwrite the file *path* (relative to the agent's working directory, or
        absolute) with *content*."""
        return WriteFile(path, content)

    @staticmethod
    def run(command: str) -> RunCommand:
        """Run a shell *command* in the agent's working directory."""
        return RunCommand(command)

    @staticmethod
    def named(name: str, arguments: Mapping[str, Any] | str) -> NamedToolCall:
        """Call the tool *name* with *arguments* (a JSON object, or its JSON text) verbatim."""
        return NamedToolCall(name, arguments)

    @staticmethod
    def custom(name: str, input: str) -> CustomToolCall:
        """Call the freeform (OpenAI ``custom``) tool *name* with raw *input* text."""
        return CustomToolCall(name, input)

    @staticmethod
    def apply_patch(patch: str) -> CustomToolCall:
        """Call Codex's freeform ``apply_patch`` tool with *patch*
        (``*** Begin Patch`` ... ``*** End Patch``)."""
        return CustomToolCall("apply_patch", patch)


@attrs.frozen
class WriteFile(ToolCall):
    """Neutral "write this file" tool call.

    Claude Code: ``Write`` with ``file_path`` (made absolute against the session's working
    directory) and ``content``. Codex: ``apply_patch`` adding the file when the request offers
    that tool and *content* ends with a newline, otherwise ``exec_command`` running a
    shell-quoted ``printf``.
    """

    path: str
    content: str


@attrs.frozen
class RunCommand(ToolCall):
    """Neutral "run this shell command" tool call: Claude Code ``Bash`` (``command``), Codex
    ``exec_command`` (``cmd``)."""

    command: str
    description: str = "scripted command"


def _json_text(value: Mapping[str, Any] | str) -> str:
    if isinstance(value, str):
        json.loads(value)  # must be valid JSON
        return value
    return json.dumps(dict(value))


@attrs.frozen
class NamedToolCall(ToolCall):
    """A call of the tool *name* with JSON *arguments*: an Anthropic ``tool_use`` block, an
    OpenAI ``function_call`` item / chat ``tool_calls`` entry. *arguments* is kept as JSON
    text; pass a mapping or the text."""

    name: str
    arguments: str = attrs.field(converter=_json_text)

    @property
    def arguments_object(self) -> dict[str, Any]:
        """The arguments, parsed."""
        parsed: dict[str, Any] = json.loads(self.arguments)
        return parsed


@attrs.frozen
class CustomToolCall(ToolCall):
    """A call of an OpenAI freeform tool (``custom_tool_call``), e.g. Codex's ``apply_patch``.
    The Anthropic API has no such thing; :class:`AnthropicServer` refuses it."""

    name: str
    input: str


def _parts(value: Part | Iterable[Part]) -> tuple[Part, ...]:
    if isinstance(value, Part):
        return (value,)
    parts = tuple(value)
    for part in parts:
        if not isinstance(part, Part):
            raise TypeError(f"not a reply part: {part!r}")
    return parts


def _non_negative(_inst: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} must be >= 0, not {value!r}")


@attrs.frozen
class Reply:
    """One complete model message.

    *parts* is a single part or a sequence of them, rendered in order. *chunk_delay* seconds
    pass before each streamed event (a slow stream). *delta_size*, when positive, splits text
    into deltas of at most that many characters (default: one delta per text part).
    """

    parts: tuple[Part, ...] = attrs.field(converter=_parts)
    usage: Usage = Usage()
    chunk_delay: float = attrs.field(default=0.0, validator=_non_negative)
    delta_size: int = attrs.field(default=0, validator=_non_negative)

    @property
    def tool_calls(self) -> tuple[ToolCall, ...]:
        """The tool-call parts."""
        return tuple(p for p in self.parts if isinstance(p, ToolCall))

    @property
    def text(self) -> str:
        """All text parts, concatenated."""
        return "".join(p.text for p in self.parts if isinstance(p, Text))


def _reply(value: Reply | Part | Iterable[Part]) -> Reply:
    return value if isinstance(value, Reply) else Reply(value)


_DEFAULT_ERROR_MESSAGES: Mapping[int, str] = {
    400: "scripted bad request",
    401: "scripted authentication failure",
    403: "scripted permission failure",
    404: "scripted not found",
    413: "scripted request too large",
    429: "scripted rate limit",
    500: "scripted internal server error",
    503: "scripted service unavailable",
    529: "scripted overload",
}


@attrs.frozen
class ErrorReply:
    """Answer the turn with HTTP *status* and the API's error JSON.

    *error_type* overrides the API's type for the status (Anthropic ``overloaded_error``,
    OpenAI ``rate_limit_exceeded``, ...). *retry_after* (seconds) adds a ``retry-after`` header.
    """

    status: int
    message: str | None = None
    error_type: str | None = None
    retry_after: float | None = None

    @property
    def text(self) -> str:
        """The error message: *message*, or a default for the status."""
        if self.message is not None:
            return self.message
        return _DEFAULT_ERROR_MESSAGES.get(self.status, f"scripted error {self.status}")

    @classmethod
    def unauthorized(cls, message: str | None = None) -> ErrorReply:
        """401: bad API key."""
        return cls(401, message)

    @classmethod
    def rate_limited(
        cls, retry_after: float | None = 1.0, message: str | None = None
    ) -> ErrorReply:
        """429 with a ``retry-after`` header."""
        return cls(429, message, retry_after=retry_after)

    @classmethod
    def server_error(cls, message: str | None = None) -> ErrorReply:
        """500."""
        return cls(500, message)

    @classmethod
    def overloaded(cls, message: str | None = None) -> ErrorReply:
        """529, Anthropic's "overloaded" status."""
        return cls(529, message)


@attrs.frozen
class Stall:
    """Start streaming *reply*, send its first *after_events* events, then send nothing more
    and keep the connection open until the server stops (a model that went silent)."""

    reply: Reply = attrs.field(default=Reply(Text("partial answer")), converter=_reply)
    after_events: int = attrs.field(default=2, validator=_non_negative)


@attrs.frozen
class Disconnect:
    """Start streaming *reply*, send its first *after_events* events, then close the connection
    mid-body (the chunked body is left unterminated, as when a server dies). With *reset*, the
    socket is closed with an RST instead of a FIN."""

    reply: Reply = attrs.field(default=Reply(Text("partial answer")), converter=_reply)
    after_events: int = attrs.field(default=2, validator=_non_negative)
    reset: bool = False


Step: TypeAlias = Reply | ErrorReply | Stall | Disconnect
"""What the model does on one turn."""

StepLike: TypeAlias = Step | Part
"""A step, or a single part standing for a :class:`Reply` holding only it."""


def _step(value: StepLike) -> Step:
    if isinstance(value, Part):
        return Reply(value)
    if isinstance(value, Reply | ErrorReply | Stall | Disconnect):
        return value
    raise TypeError(f"not a script step: {value!r}")


def _steps(values: Iterable[StepLike]) -> tuple[Step, ...]:
    if isinstance(values, Part | Reply | ErrorReply | Stall | Disconnect):
        raise TypeError("Script takes a sequence of steps, e.g. Script([Text('hi')])")
    return tuple(_step(v) for v in values)


@attrs.frozen
class Script:
    """The model's turns, in order, and the reply for every turn after them.

    ``Script([ToolCall.write("a.txt", "x\\n"), Text("done")])``: first turn writes the file,
    second turn says "done"; any later turn gets *final* (``Text("done")`` unless given).
    """

    steps: tuple[Step, ...] = attrs.field(factory=tuple, converter=_steps)
    final: Reply = attrs.field(default=Reply(Text("done")), converter=_reply)

    def __len__(self) -> int:
        return len(self.steps)


def _script(value: Script | Iterable[StepLike]) -> Script:
    return value if isinstance(value, Script) else Script(value)


# --------------------------------------------------------------------------------------------
# What a server received and answers
# --------------------------------------------------------------------------------------------


@attrs.frozen(eq=False)
class RecordedRequest:
    """One HTTP request the server received.

    *headers* has lower-case names. *body* is the parsed JSON body (``None`` when there was no
    body or it was not JSON); *raw_body* the bytes after content decoding. *step_index* is the
    index in :attr:`Script.steps` of the step this request consumed; ``None`` when it consumed
    none (a side request, or a turn after the script ran out, see *is_turn*).
    """

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: Any
    raw_body: bytes
    is_turn: bool
    step_index: int | None
    received_at: float

    def header(self, name: str) -> str | None:
        """The value of header *name* (case-insensitive), or ``None``."""
        return self.headers.get(name.lower())


def sse_event(event: str | None, data: object) -> bytes:
    """One server-sent event: an ``event:`` line when *event* is given, a ``data:`` line with
    *data* (JSON-encoded unless it is a ``str``), and the blank line that ends it."""
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    head = f"event: {event}\n" if event is not None else ""
    return f"{head}data: {text}\n\n".encode()


@attrs.frozen
class JSONResponse:
    """A complete JSON answer."""

    status: int
    body: object
    headers: tuple[tuple[str, str], ...] = ()


@attrs.frozen
class StreamResponse:
    """A ``text/event-stream`` answer sent with chunked transfer encoding, one chunk per event.

    *chunk_delay* seconds pass before each event. With *cut* set, only the first *cut_after*
    events are sent; then the stream stalls (``"stall"``) or the connection is dropped
    (``"disconnect"``, ``"reset"``).
    """

    events: tuple[bytes, ...]
    chunk_delay: float = 0.0
    cut: Literal["stall", "disconnect", "reset"] | None = None
    cut_after: int = 0
    headers: tuple[tuple[str, str], ...] = ()

    def with_step(self, step: Step) -> StreamResponse:
        """This stream, paced and cut as *step* says."""
        if isinstance(step, Stall):
            return attrs.evolve(
                self, chunk_delay=step.reply.chunk_delay, cut="stall", cut_after=step.after_events
            )
        if isinstance(step, Disconnect):
            return attrs.evolve(
                self,
                chunk_delay=step.reply.chunk_delay,
                cut="reset" if step.reset else "disconnect",
                cut_after=step.after_events,
            )
        if isinstance(step, Reply):
            return attrs.evolve(self, chunk_delay=step.chunk_delay)
        return self


@attrs.frozen
class NoAnswer:
    """No HTTP answer at all: keep the connection silent until the server stops (``"stall"``),
    or close it (``"disconnect"``, ``"reset"``) without a status line."""

    cut: Literal["stall", "disconnect", "reset"]

    @classmethod
    def for_step(cls, step: Stall | Disconnect) -> NoAnswer:
        """The no-answer that *step* means for a request that is not streamed."""
        if isinstance(step, Stall):
            return cls("stall")
        return cls("reset" if step.reset else "disconnect")


Response: TypeAlias = JSONResponse | StreamResponse | NoAnswer


# --------------------------------------------------------------------------------------------
# HTTP machinery
# --------------------------------------------------------------------------------------------


class LoopbackHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server for tests, with a listen backlog that holds a burst of clients.

    socketserver listens with a backlog of 5: a burst of concurrent connections (several agents,
    a test's threads) overflows it while the accept loop is starved of CPU, and the kernel then
    drops SYNs or resets connections whose SYN cookie no longer checks out."""

    daemon_threads = True
    request_queue_size = 128


class _HTTPServer(LoopbackHTTPServer):
    block_on_close = False
    allow_reuse_address = False

    def __init__(self, owner: ScriptedModelServer) -> None:
        self.owner = owner
        self.connections: set[socket.socket] = set()
        self.connections_changed = threading.Condition()
        self.to_reset: set[socket.socket] = set()
        super().__init__((LOCALHOST, 0), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_changed:
            self.connections.add(request)
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._forget(request)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._forget(request)

    def _forget(self, request: socket.socket) -> None:
        with self.connections_changed:
            self.connections.discard(request)
            self.to_reset.discard(request)
            self.connections_changed.notify_all()

    def shutdown_request(self, request: Any) -> None:
        if request in self.to_reset:
            # no FIN first: with SO_LINGER (on, 0) close() sends only an RST
            self.close_request(request)
        else:
            super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-answer is normal here; stay quiet.
        pass

    def drop_connections(self, timeout: float) -> bool:
        """Shut every open connection down; wait until their handlers are gone."""
        with self.connections_changed:
            for conn in list(self.connections):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            return self.connections_changed.wait_for(lambda: not self.connections, timeout)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out as separate writes: with Nagle's algorithm the body waits for
    # the client's delayed ACK of the headers, about 40 ms on every keep-alive answer.
    disable_nagle_algorithm = True
    server: _HTTPServer
    timeout = 300  # a client that opens a connection and never sends stays no longer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

    def _read_body(self) -> bytes:
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            raw = b"".join(chunks)
        else:
            raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        encoding = self.headers.get("content-encoding", "").lower()
        if encoding == "gzip":
            raw = gzip.decompress(raw)
        elif encoding == "deflate":
            raw = zlib.decompress(raw)
        return raw

    def _dispatch(self) -> None:
        owner = self.server.owner
        path, _, query = self.path.partition("?")
        raw = self._read_body()
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            recorded, step = owner._record(self.command, path, query, headers, body, raw)
            response = owner.respond(recorded, step)
        except Exception as exc:  # a bug in a server or a bad script: say so, loudly
            response = JSONResponse(
                500, {"error": {"type": "scripted_server_error", "message": repr(exc)}}
            )
        if isinstance(response, JSONResponse):
            self._send_json(response)
        elif isinstance(response, StreamResponse):
            self._send_stream(response)
        else:
            self._cut(response.cut)

    def _send_json(self, response: JSONResponse) -> None:
        payload = json.dumps(response.body).encode()
        self.send_response(response.status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        for name, value in response.headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _send_stream(self, response: StreamResponse) -> None:
        stopping = self.server.owner._stopping
        self.send_response(HTTPStatus.OK)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        for name, value in response.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.flush()
        limit = len(response.events) if response.cut is None else response.cut_after
        for event in response.events[:limit]:
            if response.chunk_delay and stopping.wait(response.chunk_delay):
                self.close_connection = True
                return
            self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
            self.wfile.flush()
        if response.cut is None:
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        else:
            self._cut(response.cut)

    def _cut(self, how: Literal["stall", "disconnect", "reset"]) -> None:
        self.close_connection = True
        if how == "stall":
            self.server.owner._stopping.wait()
        elif how == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            with self.server.connections_changed:
                self.server.to_reset.add(self.connection)
        else:
            self.connection.shutdown(socket.SHUT_RDWR)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()


class ScriptedModelServer(abc.ABC):
    """An HTTP model server on ``127.0.0.1`` (ephemeral port) that answers from a :class:`Script`.

    Use it as a context manager (``with AnthropicServer(script) as server: ...``) or call
    :meth:`start` and :meth:`stop`. Every request is recorded (:attr:`requests`), thread-safely.
    Subclasses say which requests are turns (:meth:`is_turn`) and render answers
    (:meth:`respond`).
    """

    #: Path prefix clients put in front of the API paths; see :attr:`api_base_url`.
    api_prefix: ClassVar[str] = ""

    def __init__(self, script: Script | Iterable[StepLike] = ()) -> None:
        self.script: Script = _script(script)
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._requests: list[RecordedRequest] = []
        self._next_step = 0
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> Self:
        """Bind an ephemeral port on 127.0.0.1 and serve in a background thread."""
        if self._httpd is not None:
            raise RuntimeError("server already started")
        self._stopping.clear()
        self._httpd = _HTTPServer(self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{type(self).__name__}:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving, drop every open connection (stalled streams included) and close the
        socket. Returns within about *timeout* seconds whatever the clients do. Idempotent."""
        httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None:
            return
        self._stopping.set()
        httpd.shutdown()
        thread.join(timeout)
        httpd.drop_connections(timeout)
        httpd.server_close()
        self._httpd = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """Whether the server is started and not stopped."""
        return self._httpd is not None

    @property
    def port(self) -> int:
        """The TCP port (only while running)."""
        if self._httpd is None:
            raise RuntimeError("server not started")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``, without a trailing slash."""
        return f"http://{LOCALHOST}:{self.port}"

    @property
    def api_base_url(self) -> str:
        """:attr:`base_url` plus the API's path prefix (e.g. ``/v1`` for OpenAI clients)."""
        return self.base_url + self.api_prefix

    def load_script(self, script: Script | Iterable[StepLike]) -> None:
        """Answer the next turns from *script*, from its first step (the request log stays).
        For a server shared by several tests behind a slow-starting client such as a proxy."""
        with self._lock:
            self.script = _script(script)
            self._next_step = 0

    # -- the request log ----------------------------------------------------------------------

    @property
    def requests(self) -> tuple[RecordedRequest, ...]:
        """Every request received so far, in arrival order."""
        with self._lock:
            return tuple(self._requests)

    @property
    def turns(self) -> tuple[RecordedRequest, ...]:
        """The requests that were model turns (consumed a step, or got the final reply)."""
        return tuple(r for r in self.requests if r.is_turn)

    @property
    def steps_used(self) -> int:
        """How many script steps have been consumed."""
        with self._lock:
            return self._next_step

    @property
    def script_done(self) -> bool:
        """Whether every step of the script has been consumed."""
        return self.steps_used >= len(self.script.steps)

    def wait_for_requests(
        self,
        count: int = 1,
        *,
        timeout: float = 10.0,
        where: Callable[[RecordedRequest], bool] | None = None,
    ) -> tuple[RecordedRequest, ...]:
        """Block until at least *count* requests (matching *where*, if given) have arrived and
        return them; raise :class:`TimeoutError` after *timeout* seconds."""

        def matching() -> list[RecordedRequest]:
            return [r for r in self._requests if where is None or where(r)]

        with self._arrived:
            if not self._arrived.wait_for(lambda: len(matching()) >= count, timeout):
                got = len(matching())
                raise TimeoutError(f"{got} of {count} expected requests arrived in {timeout}s")
            return tuple(matching())

    def _record(
        self,
        method: str,
        path: str,
        query: str,
        headers: Mapping[str, str],
        body: Any,
        raw: bytes,
    ) -> tuple[RecordedRequest, Step | None]:
        turn = self.is_turn(method, path, body)
        with self._arrived:
            step: Step | None = None
            index: int | None = None
            if turn:
                if self._next_step < len(self.script.steps):
                    index = self._next_step
                    step = self.script.steps[index]
                    self._next_step += 1
                else:
                    step = self.script.final
            recorded = RecordedRequest(
                method=method,
                path=path,
                query=query,
                headers=dict(headers),
                body=body,
                raw_body=raw,
                is_turn=turn,
                step_index=index,
                received_at=time.time(),
            )
            self._requests.append(recorded)
            self._arrived.notify_all()
        return recorded, step

    # -- what subclasses provide ----------------------------------------------------------

    @abc.abstractmethod
    def is_turn(self, method: str, path: str, body: Any) -> bool:
        """Whether this request is a model turn, i.e. consumes the next script step."""

    @abc.abstractmethod
    def respond(self, request: RecordedRequest, step: Step | None) -> Response:
        """The answer to *request*; *step* is the step it consumed (``None`` unless a turn)."""


def split_text(text: str, size: int) -> Sequence[str]:
    """*text* in pieces of at most *size* characters (one piece when *size* is 0)."""
    if size <= 0 or len(text) <= size:
        return [text]
    return [text[i : i + size] for i in range(0, len(text), size)]
