"""A scripted OpenAI-compatible server: the Responses API as Codex (``codex exec``) expects it,
plus Chat Completions and the model list for other OpenAI clients (LiteLLM, SDKs).

    from oxi_core.testing.openai_server import OpenAIServer
    from oxi_core.testing.model_server import Text, ToolCall
    with OpenAIServer([ToolCall.write("hello.txt", "hi\\n"), Text("done")]) as server:
        config = server.codex_config()  # CODEX_HOME/config.toml text pointing at the server
        # run `codex exec --json ...` with CODEX_HOME holding that config

Routes: ``POST /v1/responses`` and ``POST /v1/chat/completions`` (streamed with SSE when the
request says ``stream: true``, else JSON) are turns; ``GET /v1/models`` and
``GET /v1/models/{id}`` list :attr:`OpenAIServer.models`; anything else gets a 404 with the
OpenAI error JSON.

How the neutral tool calls come out: :class:`RunCommand` is a ``function_call`` to
``exec_command`` with ``{"cmd": ...}`` (or ``shell`` with an argv when the request offers only
that); :class:`WriteFile` is an ``apply_patch`` ``custom_tool_call`` adding the file when the
request offers ``apply_patch`` and the content ends with a newline, otherwise an
``exec_command`` running a shell-quoted ``printf``.
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any, ClassVar, Literal, TypeAlias

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

__all__ = [
    "OPENAI_ERROR_TYPES",
    "OpenAIServer",
    "PricedChatServer",
    "WriteFileTool",
    "add_file_patch",
    "offered_tools",
    "write_file_command",
]

OPENAI_ERROR_TYPES: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "not_found"),
    429: ("rate_limit_exceeded", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("server_error", None),
}
"""The OpenAI ``error.type`` and ``error.code`` for each HTTP status."""

WriteFileTool: TypeAlias = Literal["auto", "apply_patch", "exec_command"]
"""How :class:`OpenAIServer` renders :class:`WriteFile` (see its docstring)."""


def add_file_patch(path: str, content: str) -> str:
    """An ``apply_patch`` patch that adds *path* with *content* (which must end with a newline:
    the patch format cannot express a missing final newline)."""
    if not content.endswith("\n"):
        raise ValueError("apply_patch can only add files whose content ends with a newline")
    lines = "".join(f"+{line}\n" for line in content[:-1].split("\n"))
    return f"*** Begin Patch\n*** Add File: {path}\n{lines}*** End Patch\n"


def write_file_command(path: str, content: str) -> str:
    """A POSIX shell command that writes *content* to *path* exactly (creating its directory),
    every argument shell-quoted."""
    parent = str(PurePosixPath(path).parent)
    mkdir = "" if parent in (".", "/") else f"mkdir -p {shlex.quote(parent)} && "
    return f"{mkdir}printf '%s' {shlex.quote(content)} > {shlex.quote(path)}"


class OpenAIServer(ScriptedModelServer):
    """Scripted OpenAI-compatible server for Codex and other OpenAI API clients.

    *models* are the ids ``GET /v1/models`` lists; *model* is the model name put in replies
    (default: the one the request asks for). *write_file_tool* chooses how :class:`WriteFile`
    is rendered for the Responses API: ``"auto"`` (``apply_patch`` when offered and possible),
    ``"apply_patch"`` or ``"exec_command"``.
    """

    api_prefix = "/v1"

    def __init__(
        self,
        script: Script | Iterable[StepLike] = (),
        *,
        models: Sequence[str] = ("gpt-5.5",),
        model: str | None = None,
        write_file_tool: WriteFileTool = "auto",
    ) -> None:
        super().__init__(script)
        self.models = tuple(models)
        self.model = model
        self.write_file_tool: WriteFileTool = write_file_tool

    # -- routing ----------------------------------------------------------------------------

    def is_turn(self, method: str, path: str, body: Any) -> bool:
        """``POST /v1/responses`` and ``POST /v1/chat/completions``."""
        return method == "POST" and path.rstrip("/") in ("/v1/responses", "/v1/chat/completions")

    def respond(self, request: RecordedRequest, step: Step | None) -> Response:
        """Answer turns from *step*, list models, 404 anything else."""
        path = request.path.rstrip("/")
        if request.method == "GET" and path == "/v1/models":
            return JSONResponse(
                200, {"object": "list", "data": [self.model_object(m) for m in self.models]}
            )
        if request.method == "GET" and path.startswith("/v1/models/"):
            wanted = path.removeprefix("/v1/models/")
            if wanted in self.models:
                return JSONResponse(200, self.model_object(wanted))
            return self.error_response(ErrorReply(404, f"The model `{wanted}` does not exist"))
        if step is None:
            return self.error_response(
                ErrorReply(404, f"scripted server: no route for {request.method} {request.path}")
            )
        if isinstance(step, ErrorReply):
            return self.error_response(step)
        body = request.body if isinstance(request.body, dict) else {}
        streamed = bool(body.get("stream"))
        if isinstance(step, Stall | Disconnect) and not streamed:
            return NoAnswer.for_step(step)
        reply = step if isinstance(step, Reply) else step.reply
        model = self.model or str(body.get("model") or "gpt-scripted")
        headers = (("x-request-id", new_id("req")),)
        if path == "/v1/responses":
            response = self.response_object(reply, model, body)
            if not streamed:
                return JSONResponse(200, response, headers)
            events = self.response_events(response, reply.delta_size)
        else:
            completion = self.chat_completion(reply, model, body)
            if not streamed:
                return JSONResponse(200, completion, headers)
            events = self.chat_chunks(completion, reply.delta_size)
        return StreamResponse(tuple(events), headers=headers).with_step(step)

    # -- errors and models --------------------------------------------------------------------

    def error_response(self, error: ErrorReply) -> JSONResponse:
        """*error* as OpenAI answers it: ``{"error": {message, type, param, code}}``."""
        error_type, code = OPENAI_ERROR_TYPES.get(error.status, ("server_error", None))
        headers = [("x-request-id", new_id("req"))]
        if error.retry_after is not None:
            seconds = error.retry_after
            headers.append(
                ("retry-after", str(int(seconds)) if seconds == int(seconds) else str(seconds))
            )
            headers.append(("retry-after-ms", str(int(seconds * 1000))))
        body = {
            "error": {
                "message": error.text,
                "type": error.error_type or error_type,
                "param": None,
                "code": error.error_type or code,
            }
        }
        return JSONResponse(error.status, body, tuple(headers))

    @staticmethod
    def model_object(model_id: str) -> dict[str, Any]:
        """One entry of ``GET /v1/models``."""
        return {
            "id": model_id,
            "object": "model",
            "created": 1_700_000_000,
            "owned_by": "oxi-testing",
        }

    # -- Responses API ----------------------------------------------------------------------

    def response_object(self, reply: Reply, model: str, body: dict[str, Any]) -> dict[str, Any]:
        """The completed Responses API ``response`` object for *reply*."""
        usage = reply.usage
        return {
            "id": new_id("resp"),
            "object": "response",
            "created_at": int(time.time()),
            "status": "completed",
            "model": model,
            "output": [self.output_item(part, body) for part in reply.parts],
            "usage": {
                "input_tokens": usage.input_tokens,
                "input_tokens_details": {"cached_tokens": usage.cached_tokens},
                "output_tokens": usage.output_tokens,
                "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
                "total_tokens": usage.input_tokens + usage.output_tokens,
            },
        }

    def output_item(self, part: Part, body: dict[str, Any]) -> dict[str, Any]:
        """The Responses API output item for one reply part."""
        if isinstance(part, Text):
            return {
                "type": "message",
                "id": new_id("msg"),
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": part.text, "annotations": []}],
            }
        if isinstance(part, Reasoning):
            return {
                "type": "reasoning",
                "id": new_id("rs"),
                "summary": [{"type": "summary_text", "text": part.text}],
            }
        if isinstance(part, ToolCall):
            call = self.render_tool_call(part, body)
            if isinstance(call, CustomToolCall):
                return {
                    "type": "custom_tool_call",
                    "id": new_id("ctc"),
                    "call_id": new_id("call"),
                    "name": call.name,
                    "input": call.input,
                    "status": "completed",
                }
            return {
                "type": "function_call",
                "id": new_id("fc"),
                "call_id": new_id("call"),
                "name": call.name,
                "arguments": call.arguments,
                "status": "completed",
            }
        raise TypeError(f"cannot render {part!r}")

    def render_tool_call(
        self, call: ToolCall, body: dict[str, Any]
    ) -> NamedToolCall | CustomToolCall:
        """*call* as the concrete tool the request offers (see the module docstring)."""
        offered = offered_tools(body)
        if isinstance(call, NamedToolCall | CustomToolCall):
            return call
        if isinstance(call, WriteFile):
            choice = self.write_file_tool
            if choice == "auto":
                usable = offered.get("apply_patch") is not None and call.content.endswith("\n")
                choice = "apply_patch" if usable else "exec_command"
            if choice == "apply_patch":
                patch = add_file_patch(call.path, call.content)
                if offered.get("apply_patch") == "function":
                    return NamedToolCall("apply_patch", {"input": patch})
                return CustomToolCall("apply_patch", patch)
            return self.render_tool_call(
                RunCommand(write_file_command(call.path, call.content)), body
            )
        if isinstance(call, RunCommand):
            if "exec_command" not in offered and "shell" in offered:
                return NamedToolCall("shell", {"command": ["bash", "-lc", call.command]})
            return NamedToolCall("exec_command", {"cmd": call.command})
        raise TypeError(f"cannot render {call!r}")

    @staticmethod
    def response_events(response: dict[str, Any], delta_size: int = 0) -> list[bytes]:
        """The SSE events that stream *response*: ``response.created``, for each output item
        ``response.output_item.added``, its deltas and ``response.output_item.done``, then
        ``response.completed``."""
        events: list[dict[str, Any]] = []
        shell = dict(response, status="in_progress", output=[], usage=None)
        events.append({"type": "response.created", "response": shell})
        events.append({"type": "response.in_progress", "response": shell})
        for index, item in enumerate(response["output"]):
            base = {"item_id": item["id"], "output_index": index}
            kind = item["type"]
            if kind == "message":
                text = item["content"][0]["text"]
                part = {"type": "output_text", "text": "", "annotations": []}
                events.append(
                    {
                        "type": "response.output_item.added",
                        "output_index": index,
                        "item": dict(item, status="in_progress", content=[]),
                    }
                )
                events.append(
                    {
                        "type": "response.content_part.added",
                        **base,
                        "content_index": 0,
                        "part": part,
                    }
                )
                events.extend(
                    {"type": "response.output_text.delta", **base, "content_index": 0, "delta": d}
                    for d in split_text(text, delta_size)
                )
                events.append(
                    {"type": "response.output_text.done", **base, "content_index": 0, "text": text}
                )
                events.append(
                    {
                        "type": "response.content_part.done",
                        **base,
                        "content_index": 0,
                        "part": dict(part, text=text),
                    }
                )
            elif kind == "reasoning":
                text = item["summary"][0]["text"]
                part = {"type": "summary_text", "text": ""}
                events.append(
                    {
                        "type": "response.output_item.added",
                        "output_index": index,
                        "item": dict(item, summary=[]),
                    }
                )
                events.append(
                    {
                        "type": "response.reasoning_summary_part.added",
                        **base,
                        "summary_index": 0,
                        "part": part,
                    }
                )
                events.extend(
                    {
                        "type": "response.reasoning_summary_text.delta",
                        **base,
                        "summary_index": 0,
                        "delta": d,
                    }
                    for d in split_text(text, delta_size)
                )
                events.append(
                    {
                        "type": "response.reasoning_summary_text.done",
                        **base,
                        "summary_index": 0,
                        "text": text,
                    }
                )
                events.append(
                    {
                        "type": "response.reasoning_summary_part.done",
                        **base,
                        "summary_index": 0,
                        "part": dict(part, text=text),
                    }
                )
            elif kind == "function_call":
                arguments = item["arguments"]
                events.append(
                    {
                        "type": "response.output_item.added",
                        "output_index": index,
                        "item": dict(item, arguments="", status="in_progress"),
                    }
                )
                events.extend(
                    {"type": "response.function_call_arguments.delta", **base, "delta": d}
                    for d in split_text(arguments, delta_size)
                )
                events.append(
                    {
                        "type": "response.function_call_arguments.done",
                        **base,
                        "arguments": arguments,
                    }
                )
            else:  # custom_tool_call
                text = item["input"]
                events.append(
                    {
                        "type": "response.output_item.added",
                        "output_index": index,
                        "item": dict(item, input="", status="in_progress"),
                    }
                )
                events.extend(
                    {"type": "response.custom_tool_call_input.delta", **base, "delta": d}
                    for d in split_text(text, delta_size)
                )
                events.append(
                    {"type": "response.custom_tool_call_input.done", **base, "input": text}
                )
            events.append(
                {"type": "response.output_item.done", "output_index": index, "item": item}
            )
        events.append({"type": "response.completed", "response": response})
        return [
            sse_event(event["type"], dict(event, sequence_number=number))
            for number, event in enumerate(events)
        ]

    # -- Chat Completions -------------------------------------------------------------------

    def chat_completion(self, reply: Reply, model: str, body: dict[str, Any]) -> dict[str, Any]:
        """The complete ``chat.completion`` object for *reply*. Tool calls become function
        ``tool_calls`` (freeform tools: a function taking ``{"input": ...}``); reasoning is
        only counted in the usage."""
        usage = reply.usage
        calls = []
        for part in reply.tool_calls:
            call = self.render_tool_call(part, body)
            arguments = (
                json.dumps({"input": call.input})
                if isinstance(call, CustomToolCall)
                else call.arguments
            )
            calls.append(
                {
                    "id": new_id("call"),
                    "type": "function",
                    "function": {"name": call.name, "arguments": arguments},
                }
            )
        message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
        if calls:
            message["tool_calls"] = calls
        return {
            "id": new_id("chatcmpl"),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": "tool_calls" if calls else "stop",
                    "logprobs": None,
                }
            ],
            "usage": {
                "prompt_tokens": usage.input_tokens,
                "completion_tokens": usage.output_tokens,
                "total_tokens": usage.input_tokens + usage.output_tokens,
                "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
                "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
            },
        }

    @staticmethod
    def chat_chunks(completion: dict[str, Any], delta_size: int = 0) -> list[bytes]:
        """The SSE ``chat.completion.chunk`` s that stream *completion*: a role chunk, content
        deltas, tool-call deltas, a chunk with ``finish_reason``, a usage chunk (``choices``
        empty, sent always) and ``data: [DONE]``."""
        head = {
            "id": completion["id"],
            "object": "chat.completion.chunk",
            "created": completion["created"],
            "model": completion["model"],
        }
        choice = completion["choices"][0]
        message = choice["message"]

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return dict(
                head,
                choices=[{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
            )

        chunks = [chunk({"role": "assistant", "content": ""})]
        if message["content"]:
            chunks.extend(chunk({"content": t}) for t in split_text(message["content"], delta_size))
        for index, call in enumerate(message.get("tool_calls", [])):
            opening = {
                "index": index,
                "id": call["id"],
                "type": "function",
                "function": {"name": call["function"]["name"], "arguments": ""},
            }
            chunks.append(chunk({"tool_calls": [opening]}))
            chunks.extend(
                chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
                for piece in split_text(call["function"]["arguments"], delta_size)
            )
        chunks.append(chunk({}, choice["finish_reason"]))
        chunks.append(dict(head, choices=[], usage=completion["usage"]))
        return [sse_event(None, c) for c in chunks] + [sse_event(None, "[DONE]")]

    # -- Codex configuration ----------------------------------------------------------------

    def codex_config(
        self,
        *,
        model: str | None = None,
        provider: str = "scripted",
        env_key: str = "OXI_SCRIPTED_API_KEY",
        stream_idle_timeout_ms: int | None = None,
    ) -> str:
        """A Codex ``config.toml`` that points Codex at this server, without retries.

        Put it in ``$CODEX_HOME/config.toml`` and set the variable *env_key* to any value.
        *model* defaults to the first of :attr:`models`. *stream_idle_timeout_ms* makes Codex
        give up on a stream that sends nothing for that long (its default is 5 minutes).
        """
        chosen = model or (self.models[0] if self.models else "gpt-5.5")
        idle = (
            ""
            if stream_idle_timeout_ms is None
            else f"stream_idle_timeout_ms = {int(stream_idle_timeout_ms)}\n"
        )
        return (
            f"model = {json.dumps(chosen)}\n"
            f"model_provider = {json.dumps(provider)}\n"
            "\n"
            f"[model_providers.{provider}]\n"
            'name = "oxi scripted model server"\n'
            f"base_url = {json.dumps(self.api_base_url)}\n"
            'wire_api = "responses"\n'
            f"env_key = {json.dumps(env_key)}\n"
            "request_max_retries = 0\n"
            "stream_max_retries = 0\n"
            f"{idle}"
        )


def offered_tools(body: dict[str, Any]) -> dict[str, str]:
    """The tools a Responses / Chat request offers: name -> kind (``function``, ``custom``,
    ...)."""
    offered: dict[str, str] = {}
    for tool in body.get("tools") or []:
        if not isinstance(tool, dict):
            continue
        name = tool.get("name") or (tool.get("function") or {}).get("name") or tool.get("type")
        if isinstance(name, str):
            offered[name] = str(tool.get("type", "function"))
    return offered


class PricedChatServer(OpenAIServer):
    """Chat Completions as a provider that prices its own answers (xAI, OpenRouter): completion
    tokens include the reasoning tokens (as OpenAI-compatible providers count them), and the
    usage block carries the provider's cost fields, which a subclass says in
    :meth:`cost_fields`. ``GET /v1/models`` lists the subclass's :attr:`prices`."""

    prices: ClassVar[Mapping[str, Any]] = {}

    def __init__(self, script: Script | Iterable[StepLike] = (), **kwargs: Any) -> None:
        kwargs.setdefault("models", tuple(self.prices))
        super().__init__(script, **kwargs)

    def chat_completion(self, reply: Reply, model: str, body: dict[str, Any]) -> dict[str, Any]:
        completion = super().chat_completion(reply, model, body)
        usage = completion["usage"]
        usage["completion_tokens"] += reply.usage.reasoning_tokens
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        usage.update(self.cost_fields(model, usage))
        return completion

    def cost_fields(self, model: str, usage: Mapping[str, Any]) -> dict[str, Any]:
        """The provider's own cost fields for ``usage`` of ``model``."""
        raise NotImplementedError
