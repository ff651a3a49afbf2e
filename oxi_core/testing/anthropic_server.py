"""A scripted Anthropic Messages API server, as Claude Code (``claude -p``) expects it.

    from oxi_core.testing.anthropic_server import AnthropicServer
    from oxi_core.testing.model_server import Text, ToolCall
    with AnthropicServer([ToolCall.write("hello.txt", "hi\\n"), Text("done")]) as server:
        env = {"ANTHROPIC_BASE_URL": server.base_url, "ANTHROPIC_API_KEY": "test"}
        # run `claude -p ... --permission-mode acceptEdits` with env here

Routes: ``POST /v1/messages`` (streamed with SSE when the request says ``stream: true``, else
JSON), ``POST /v1/messages/count_tokens``; anything else (Claude Code first probes ``HEAD /``)
gets a 404 with the Anthropic error JSON.

Only requests that offer tools are turns. Claude Code's side requests (the tool-less
session-title request, for example) get :attr:`AnthropicServer.side_reply` without consuming
the script.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from pathlib import PurePosixPath
from typing import Any

from oxi_core.testing.model_server import (
    CustomToolCall,
    Disconnect,
    ErrorReply,
    JSONResponse,
    NamedToolCall,
    NoAnswer,
    Part,
    Reasoning,
    RecordedRequest,
    Reply,
    Response,
    RunCommand,
    Script,
    ScriptedModelServer,
    Stall,
    Step,
    StepLike,
    StreamResponse,
    Text,
    ToolCall,
    WriteFile,
    new_id,
    split_text,
    sse_event,
)

__all__ = ["ANTHROPIC_ERROR_TYPES", "AnthropicServer"]

ANTHROPIC_ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "api_error",
    529: "overloaded_error",
}
"""The Anthropic ``error.type`` for each HTTP status."""

# Claude Code's system prompt names the session's directory, e.g. "Primary working directory: /x".
_CWD_PATTERNS = (
    re.compile(r"^\s*-?\s*Primary working directory:\s*(\S.*?)\s*$", re.MULTILINE),
    re.compile(r"^\s*-?\s*Working directory:\s*(\S.*?)\s*$", re.MULTILINE),
)


class AnthropicServer(ScriptedModelServer):
    """Scripted ``/v1/messages`` server for Claude Code and other Anthropic API clients.

    *model* is the model name put in replies (default: the one the request asks for).
    *workdir* is where relative :class:`WriteFile` paths point (default: the working directory
    named in the request's system prompt). *side_reply* answers requests that are not turns.
    """

    def __init__(
        self,
        script: Script | Iterable[StepLike] = (),
        *,
        model: str | None = None,
        workdir: str | os.PathLike[str] | None = None,
        side_reply: str = "Scripted session",
    ) -> None:
        super().__init__(script)
        for step in (*self.script.steps, self.script.final):
            reply = step.reply if isinstance(step, Stall | Disconnect) else step
            if isinstance(reply, Reply):
                for part in reply.parts:
                    if isinstance(part, CustomToolCall):
                        raise ValueError(
                            f"the Anthropic API has no freeform tools; cannot script {part!r}"
                        )
        self.model = model
        self.workdir = None if workdir is None else os.fspath(workdir)
        self.side_reply = side_reply

    # -- routing ----------------------------------------------------------------------------

    def is_turn(self, method: str, path: str, body: Any) -> bool:
        """``POST /v1/messages`` requests that offer tools."""
        return (
            method == "POST"
            and path.rstrip("/") == "/v1/messages"
            and isinstance(body, dict)
            and bool(body.get("tools"))
        )

    def respond(self, request: RecordedRequest, step: Step | None) -> Response:
        """Answer a turn from *step*; side requests with :attr:`side_reply`; others 404."""
        path = request.path.rstrip("/")
        body = request.body if isinstance(request.body, dict) else {}
        if request.method == "POST" and path == "/v1/messages/count_tokens":
            return JSONResponse(200, {"input_tokens": max(1, len(request.raw_body) // 4)})
        if request.method != "POST" or path != "/v1/messages":
            return self.error_response(
                ErrorReply(404, f"scripted server: no route for {request.method} {request.path}")
            )
        if step is None:
            step = Reply(Text(self.side_reply))
        if isinstance(step, ErrorReply):
            return self.error_response(step)
        streamed = bool(body.get("stream"))
        if isinstance(step, Stall | Disconnect) and not streamed:
            return NoAnswer.for_step(step)
        reply = step if isinstance(step, Reply) else step.reply
        model = self.model or str(body.get("model") or "claude-scripted")
        headers = (("request-id", new_id("req")),)
        message = self.message(reply, model, request)
        if not streamed:
            return JSONResponse(200, message, headers)
        events = self.stream_events(message, reply.delta_size)
        return StreamResponse(
            tuple(sse_event(e["type"], e) for e in events), headers=headers
        ).with_step(step)

    # -- rendering ----------------------------------------------------------------------------

    def error_response(self, error: ErrorReply) -> JSONResponse:
        """*error* as Anthropic answers it: ``{"type": "error", "error": {type, message}}``."""
        request_id = new_id("req")
        error_type = error.error_type or ANTHROPIC_ERROR_TYPES.get(error.status, "api_error")
        headers = [("request-id", request_id)]
        if error.retry_after is not None:
            headers.append(("retry-after", _seconds(error.retry_after)))
        body = {
            "type": "error",
            "error": {"type": error_type, "message": error.text},
            "request_id": request_id,
        }
        return JSONResponse(error.status, body, tuple(headers))

    def message(self, reply: Reply, model: str, request: RecordedRequest) -> dict[str, Any]:
        """The complete Messages API ``message`` object for *reply*."""
        usage = reply.usage
        content = [self.content_block(part, request) for part in reply.parts]
        return {
            "id": new_id("msg"),
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": "tool_use" if reply.tool_calls else "end_turn",
            "stop_sequence": None,
            "usage": {
                "input_tokens": usage.input_tokens,
                "cache_creation_input_tokens": usage.cache_creation_tokens,
                "cache_read_input_tokens": usage.cached_tokens,
                "output_tokens": usage.output_tokens,
            },
        }

    def content_block(self, part: Part, request: RecordedRequest) -> dict[str, Any]:
        """The content block for one reply part."""
        if isinstance(part, Text):
            return {"type": "text", "text": part.text}
        if isinstance(part, Reasoning):
            return {"type": "thinking", "thinking": part.text, "signature": new_id("sig")}
        if isinstance(part, ToolCall):
            name, arguments = self.tool_use(part, request)
            return {"type": "tool_use", "id": new_id("toolu"), "name": name, "input": arguments}
        raise TypeError(f"cannot render {part!r}")

    def tool_use(self, call: ToolCall, request: RecordedRequest) -> tuple[str, dict[str, Any]]:
        """Tool name and input for *call*: ``Write`` / ``Bash`` for the neutral calls."""
        if isinstance(call, WriteFile):
            return "Write", {
                "file_path": self.absolute(call.path, request),
                "content": call.content,
            }
        if isinstance(call, RunCommand):
            return "Bash", {"command": call.command, "description": call.description}
        if isinstance(call, NamedToolCall):
            return call.name, call.arguments_object
        raise TypeError(f"the Anthropic API cannot render {call!r}")

    def absolute(self, path: str, request: RecordedRequest) -> str:
        """*path* made absolute against :attr:`workdir` or the request's working directory."""
        if PurePosixPath(path).is_absolute():
            return path
        base = self.workdir or request_workdir(request.body)
        return str(PurePosixPath(base) / path) if base else path

    @staticmethod
    def stream_events(message: dict[str, Any], delta_size: int = 0) -> list[dict[str, Any]]:
        """The SSE events that stream *message*: ``message_start``, each block's
        ``content_block_start`` / ``_delta`` / ``_stop``, ``message_delta``, ``message_stop``."""
        usage = message["usage"]
        start = dict(message, content=[], stop_reason=None, usage=dict(usage, output_tokens=1))
        events: list[dict[str, Any]] = [{"type": "message_start", "message": start}]
        for index, block in enumerate(message["content"]):
            kind = block["type"]
            if kind == "text":
                opening: dict[str, Any] = {"type": "text", "text": ""}
                deltas = [
                    {"type": "text_delta", "text": t} for t in split_text(block["text"], delta_size)
                ]
            elif kind == "thinking":
                opening = {"type": "thinking", "thinking": "", "signature": ""}
                deltas = [
                    {"type": "thinking_delta", "thinking": t}
                    for t in split_text(block["thinking"], delta_size)
                ]
                deltas.append({"type": "signature_delta", "signature": block["signature"]})
            else:
                opening = {
                    "type": "tool_use",
                    "id": block["id"],
                    "name": block["name"],
                    "input": {},
                }
                text = json.dumps(block["input"])
                pieces = split_text(text, delta_size or max(1, (len(text) + 1) // 2))
                deltas = [{"type": "input_json_delta", "partial_json": p} for p in pieces]
            events.append({"type": "content_block_start", "index": index, "content_block": opening})
            events.extend(
                {"type": "content_block_delta", "index": index, "delta": d} for d in deltas
            )
            events.append({"type": "content_block_stop", "index": index})
        events.append(
            {
                "type": "message_delta",
                "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                "usage": dict(usage),
            }
        )
        events.append({"type": "message_stop"})
        return events


def request_workdir(body: Any) -> str | None:
    """The working directory Claude Code names in a request's system prompt, if any."""
    if not isinstance(body, dict):
        return None
    system = body.get("system")
    texts: list[str] = []
    if isinstance(system, str):
        texts.append(system)
    elif isinstance(system, list):
        texts.extend(
            b["text"] for b in system if isinstance(b, dict) and isinstance(b.get("text"), str)
        )
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts.extend(
                b["text"] for b in content if isinstance(b, dict) and isinstance(b.get("text"), str)
            )
    for pattern in _CWD_PATTERNS:
        for text in texts:
            match = pattern.search(text)
            if match:
                return match.group(1)
    return None


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
