"""The scripted model servers: their HTTP behaviour, and the real Claude Code and Codex CLIs
driven against them (tests marked ``real_cli``; ``scripts/install-agent-clis`` installs them)."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from oxi_core.testing.agent_clis import (
    CLAUDE_CODE_VERSION,
    CODEX_VERSION,
    claude_binary,
    claude_env,
    codex_binary,
    codex_env,
)
from oxi_core.testing.anthropic_server import AnthropicServer
from oxi_core.testing.model_server import (
    CustomToolCall,
    Disconnect,
    ErrorReply,
    LoopbackHTTPServer,
    NamedToolCall,
    Reasoning,
    Reply,
    RunCommand,
    Script,
    ScriptedModelServer,
    Stall,
    Text,
    ToolCall,
    Usage,
    WriteFile,
)
from oxi_core.testing.openai_server import (
    OpenAIServer,
    WriteFileTool,
    add_file_patch,
    write_file_command,
)

Outcome = tuple[int, list[dict[str, Any]], str]
Runner = Callable[..., Outcome]

# --------------------------------------------------------------------------------------------
# A tiny HTTP client (http.client, so that nothing retries or buffers behind our back)
# --------------------------------------------------------------------------------------------


def call(
    server: ScriptedModelServer,
    method: str,
    path: str,
    body: object = None,
    *,
    timeout: float = 5.0,
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    try:
        payload = None if body is None else json.dumps(body).encode()
        headers = {"content-type": "application/json"} if payload else {}
        conn.request(method, path, payload, headers)
        response = conn.getresponse()
        data = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data
    finally:
        conn.close()


def sse(data: bytes) -> list[tuple[str | None, Any]]:
    """(event name, parsed data) for each server-sent event."""
    out: list[tuple[str | None, Any]] = []
    for block in data.decode().split("\n\n"):
        if not block.strip():
            continue
        name = None
        payload = ""
        for line in block.splitlines():
            if line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: "):
                payload = line[len("data: ") :]
        out.append((name, payload if payload == "[DONE]" else json.loads(payload)))
    return out


TOOLS = [{"name": "Write", "input_schema": {"type": "object"}}]


def messages_body(stream: bool = True, tools: bool = True, system: str = "") -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "claude-test",
        "max_tokens": 100,
        "stream": stream,
        "messages": [{"role": "user", "content": "hi"}],
    }
    if tools:
        body["tools"] = TOOLS
    if system:
        body["system"] = [{"type": "text", "text": system}]
    return body


# --------------------------------------------------------------------------------------------
# Scenario vocabulary
# --------------------------------------------------------------------------------------------


def test_script_normalises_bare_parts_into_replies() -> None:
    script = Script([ToolCall.write("a.txt", "x\n"), Text("done"), ErrorReply.overloaded()])
    assert script.steps[0] == Reply(WriteFile("a.txt", "x\n"))
    assert script.steps[1] == Reply(Text("done"))
    assert script.steps[2] == ErrorReply(529)
    assert script.final == Reply(Text("done"))
    assert len(script) == 3


def test_vocabulary_is_frozen_and_validated() -> None:
    with pytest.raises(TypeError):
        Script(Text("not a list"))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Reply(["not a part"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="chunk_delay"):
        Reply(Text("x"), chunk_delay=-1)
    with pytest.raises(ValueError):
        NamedToolCall("x", "{not json")
    call_ = ToolCall.named("Edit", {"file_path": "/a", "old_string": "x"})
    assert call_.arguments_object == {"file_path": "/a", "old_string": "x"}
    assert ToolCall.run("ls") == RunCommand("ls")
    assert ToolCall.apply_patch("p") == CustomToolCall("apply_patch", "p")
    assert Stall(Text("x")).reply == Reply(Text("x"))
    assert ErrorReply.rate_limited(3).retry_after == 3
    assert ErrorReply(418).text == "scripted error 418"


# --------------------------------------------------------------------------------------------
# Anthropic server
# --------------------------------------------------------------------------------------------


def test_anthropic_404s_and_side_requests_do_not_consume_the_script() -> None:
    with AnthropicServer([Text("first turn")], side_reply="A title") as server:
        status, _, data = call(server, "GET", "/")
        assert status == 404
        assert json.loads(data)["error"]["type"] == "not_found_error"
        status, _, _ = call(server, "HEAD", "/")
        assert status == 404

        status, _, data = call(
            server, "POST", "/v1/messages", messages_body(stream=False, tools=False)
        )
        assert status == 200
        assert json.loads(data)["content"] == [{"type": "text", "text": "A title"}]
        assert server.steps_used == 0

        status, _, data = call(
            server, "POST", "/v1/messages?beta=true", messages_body(stream=False)
        )
        assert json.loads(data)["content"][0]["text"] == "first turn"
        assert server.script_done
        status, _, data = call(server, "POST", "/v1/messages", messages_body(stream=False))
        assert json.loads(data)["content"][0]["text"] == "done"  # the final reply

        status, _, data = call(server, "POST", "/v1/messages/count_tokens", {"messages": []})
        assert status == 200
        assert json.loads(data)["input_tokens"] >= 1

        log = server.requests
        assert [(r.method, r.path, r.is_turn, r.step_index) for r in log] == [
            ("GET", "/", False, None),
            ("HEAD", "/", False, None),
            ("POST", "/v1/messages", False, None),
            ("POST", "/v1/messages", True, 0),
            ("POST", "/v1/messages", True, None),
            ("POST", "/v1/messages/count_tokens", False, None),
        ]
        assert log[3].query == "beta=true"
        assert log[3].body["model"] == "claude-test"
        assert log[3].header("Content-Type") == "application/json"
        assert len(server.turns) == 2


def test_anthropic_streams_text_and_tool_use() -> None:
    usage = Usage(input_tokens=7, output_tokens=9, cached_tokens=3, cache_creation_tokens=2)
    reply = Reply(
        [Reasoning("hmm"), Text("hello world"), ToolCall.write("sub/a.txt", "x\n")],
        usage=usage,
        delta_size=4,
    )
    system = "You are Claude.\n # Environment\n - Primary working directory: /work/repo\n"
    with AnthropicServer([reply]) as server:
        status, headers, data = call(server, "POST", "/v1/messages", messages_body(system=system))
    assert status == 200
    assert headers["content-type"].startswith("text/event-stream")
    assert headers["request-id"].startswith("req_")
    events = sse(data)
    assert all(name == payload["type"] for name, payload in events)
    kinds = [payload["type"] for _, payload in events]
    assert kinds[0] == "message_start"
    assert kinds[-2:] == ["message_delta", "message_stop"]
    start = events[0][1]["message"]
    assert start["model"] == "claude-test"
    assert start["usage"]["input_tokens"] == 7
    assert start["usage"]["cache_read_input_tokens"] == 3
    assert start["usage"]["cache_creation_input_tokens"] == 2

    blocks: dict[int, dict[str, Any]] = {}
    for _, e in events:
        if e["type"] == "content_block_start":
            blocks[e["index"]] = dict(e["content_block"], _json="")
        elif e["type"] == "content_block_delta":
            block, delta = blocks[e["index"]], e["delta"]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            elif delta["type"] == "thinking_delta":
                block["thinking"] += delta["thinking"]
            elif delta["type"] == "signature_delta":
                block["signature"] = delta["signature"]
            else:
                assert delta["type"] == "input_json_delta"
                block["_json"] += delta["partial_json"]
    assert blocks[0]["thinking"] == "hmm"
    assert blocks[0]["signature"]
    assert blocks[1]["text"] == "hello world"
    assert blocks[2]["name"] == "Write"
    assert blocks[2]["id"].startswith("toolu_")
    assert json.loads(blocks[2]["_json"]) == {"file_path": "/work/repo/sub/a.txt", "content": "x\n"}
    final = events[-2][1]
    assert final["delta"]["stop_reason"] == "tool_use"
    assert final["usage"]["output_tokens"] == 9


def test_anthropic_errors_have_the_api_shape() -> None:
    script = [
        ErrorReply.unauthorized(),
        ErrorReply.rate_limited(retry_after=2),
        ErrorReply.server_error("boom"),
        ErrorReply.overloaded(),
    ]
    with AnthropicServer(script) as server:
        results = [call(server, "POST", "/v1/messages", messages_body()) for _ in script]
    statuses = [status for status, _, _ in results]
    assert statuses == [401, 429, 500, 529]
    bodies = [json.loads(data) for _, _, data in results]
    assert [b["error"]["type"] for b in bodies] == [
        "authentication_error",
        "rate_limit_error",
        "api_error",
        "overloaded_error",
    ]
    assert all(b["type"] == "error" for b in bodies)
    assert bodies[2]["error"]["message"] == "boom"
    assert results[1][1]["retry-after"] == "2"


def test_anthropic_refuses_freeform_tools() -> None:
    with pytest.raises(ValueError, match="freeform"):
        AnthropicServer([ToolCall.apply_patch("*** Begin Patch\n*** End Patch\n")])


def test_anthropic_named_tool_and_explicit_workdir(tmp_path: Path) -> None:
    script = [Reply([ToolCall.write("a.txt", "x"), ToolCall.named("Edit", {"file_path": "/a"})])]
    with AnthropicServer(script, workdir=tmp_path, model="claude-fixed") as server:
        _, _, data = call(server, "POST", "/v1/messages", messages_body(stream=False))
    message = json.loads(data)
    assert message["model"] == "claude-fixed"
    assert message["stop_reason"] == "tool_use"
    assert [b["name"] for b in message["content"]] == ["Write", "Edit"]
    assert message["content"][0]["input"]["file_path"] == str(tmp_path / "a.txt")


# --------------------------------------------------------------------------------------------
# OpenAI server
# --------------------------------------------------------------------------------------------

CODEX_TOOLS = [
    {"type": "function", "name": "exec_command", "parameters": {}},
    {"type": "custom", "name": "apply_patch", "format": {}},
]


def responses_body(stream: bool = True, tools: list[Any] | None = None) -> dict[str, Any]:
    return {
        "model": "gpt-5.5",
        "stream": stream,
        "input": [{"role": "user", "content": "hi"}],
        "tools": CODEX_TOOLS if tools is None else tools,
    }


def test_openai_responses_stream() -> None:
    usage = Usage(input_tokens=11, output_tokens=5, cached_tokens=4, reasoning_tokens=2)
    reply = Reply(
        [Reasoning("think"), Text("hello"), ToolCall.run("ls -a"), ToolCall.write("a.txt", "x\n")],
        usage=usage,
        delta_size=2,
    )
    with OpenAIServer([reply]) as server:
        status, headers, data = call(server, "POST", "/v1/responses", responses_body())
    assert status == 200
    assert headers["content-type"].startswith("text/event-stream")
    events = [payload for _, payload in sse(data)]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    kinds = [e["type"] for e in events]
    assert kinds[0] == "response.created"
    assert kinds[-1] == "response.completed"
    assert kinds.count("response.output_item.added") == 4
    assert kinds.count("response.output_item.done") == 4
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert text == "hello"
    summary = "".join(
        e["delta"] for e in events if e["type"] == "response.reasoning_summary_text.delta"
    )
    assert summary == "think"
    done = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    assert [i["type"] for i in done] == [
        "reasoning",
        "message",
        "function_call",
        "custom_tool_call",
    ]
    assert done[2]["name"] == "exec_command"
    assert json.loads(done[2]["arguments"]) == {"cmd": "ls -a"}
    assert done[3]["name"] == "apply_patch"
    assert done[3]["input"] == "*** Begin Patch\n*** Add File: a.txt\n+x\n*** End Patch\n"
    completed = events[-1]["response"]
    assert completed["status"] == "completed"
    assert completed["output"] == done
    assert completed["usage"] == {
        "input_tokens": 11,
        "input_tokens_details": {"cached_tokens": 4},
        "output_tokens": 5,
        "output_tokens_details": {"reasoning_tokens": 2},
        "total_tokens": 16,
    }


def test_openai_write_file_falls_back_to_a_quoted_shell_command(tmp_path: Path) -> None:
    content = "no final newline, 'quotes', $HOME and `ticks`"
    path = "sub dir/it's.txt"
    cases: list[tuple[list[Any], WriteFileTool]] = [
        (CODEX_TOOLS, "auto"),
        ([CODEX_TOOLS[0]], "auto"),
        (CODEX_TOOLS, "exec_command"),
    ]
    for tools, write_tool in cases:
        script = [ToolCall.write(path, content + "\n")]
        with OpenAIServer(script, write_file_tool=write_tool) as server:
            _, _, data = call(server, "POST", "/v1/responses", responses_body(False, tools))
        item = json.loads(data)["output"][0]
        if tools is CODEX_TOOLS and write_tool == "auto":
            assert item["type"] == "custom_tool_call"
        else:
            assert item["type"] == "function_call"
            assert item["name"] == "exec_command"
    # the shell command writes the content exactly
    command = write_file_command(path, content)
    subprocess.run(["bash", "-c", command], cwd=tmp_path, check=True)
    assert (tmp_path / path).read_text() == content
    with pytest.raises(ValueError, match="newline"):
        add_file_patch("a", "no newline")
    assert (
        add_file_patch("a", "1\n\n2\n")
        == "*** Begin Patch\n*** Add File: a\n+1\n+\n+2\n*** End Patch\n"
    )


def test_openai_chat_completions_streamed_and_not() -> None:
    usage = Usage(input_tokens=3, output_tokens=4, cached_tokens=1, reasoning_tokens=2)
    reply = Reply([Text("hey there"), ToolCall.run("pwd")], usage=usage, delta_size=3)
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    with OpenAIServer([reply, reply]) as server:
        _, _, data = call(server, "POST", "/v1/chat/completions", dict(body, stream=False))
        _, _, streamed = call(server, "POST", "/v1/chat/completions", dict(body, stream=True))
    completion = json.loads(data)
    choice = completion["choices"][0]
    assert completion["object"] == "chat.completion"
    assert choice["message"]["content"] == "hey there"
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"][0]["function"] == {
        "name": "exec_command",
        "arguments": json.dumps({"cmd": "pwd"}),
    }
    expected_usage = {
        "prompt_tokens": 3,
        "completion_tokens": 4,
        "total_tokens": 7,
        "prompt_tokens_details": {"cached_tokens": 1},
        "completion_tokens_details": {"reasoning_tokens": 2},
    }
    assert completion["usage"] == expected_usage
    chunks = [payload for _, payload in sse(streamed)]
    assert chunks[-1] == "[DONE]"
    assert chunks[-2]["choices"] == []
    assert chunks[-2]["usage"] == expected_usage
    content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks[:-2])
    assert content == "hey there"
    arguments = "".join(
        t["function"]["arguments"]
        for c in chunks[:-2]
        for t in c["choices"][0]["delta"].get("tool_calls", [])
    )
    assert json.loads(arguments) == {"cmd": "pwd"}
    assert chunks[-3]["choices"][0]["finish_reason"] == "tool_calls"


def test_openai_models_and_errors() -> None:
    script = [ErrorReply.unauthorized(), ErrorReply.rate_limited(1.5), ErrorReply.server_error()]
    with OpenAIServer(script, models=("gpt-5.5", "gpt-x")) as server:
        status, _, data = call(server, "GET", "/v1/models")
        assert status == 200
        assert [m["id"] for m in json.loads(data)["data"]] == ["gpt-5.5", "gpt-x"]
        assert call(server, "GET", "/v1/models/gpt-x")[0] == 200
        assert call(server, "GET", "/v1/models/nope")[0] == 404
        status, _, data = call(server, "GET", "/")
        assert status == 404
        assert "error" in json.loads(data)
        results = [call(server, "POST", "/v1/responses", responses_body()) for _ in script]
        assert server.steps_used == 3
    assert [s for s, _, _ in results] == [401, 429, 500]
    errors = [json.loads(d)["error"] for _, _, d in results]
    assert errors[0]["code"] == "invalid_api_key"
    assert errors[1]["type"] == "rate_limit_exceeded"
    assert results[1][1]["retry-after"] == "1.5"
    assert results[1][1]["retry-after-ms"] == "1500"
    assert {"message", "type", "param", "code"} <= set(errors[2])


def test_codex_config_points_at_the_server() -> None:
    with OpenAIServer() as server:
        config = server.codex_config(stream_idle_timeout_ms=1000)
        assert f'base_url = "{server.base_url}/v1"' in config
    assert 'model = "gpt-5.5"' in config
    assert 'wire_api = "responses"' in config
    assert "request_max_retries = 0" in config
    assert "stream_idle_timeout_ms = 1000" in config


# --------------------------------------------------------------------------------------------
# Shared machinery: pacing, stalls, disconnects, shutdown, the request log
# --------------------------------------------------------------------------------------------


def test_slow_stream_paces_events() -> None:
    with AnthropicServer([Reply(Text("slow"), chunk_delay=0.05)]) as server:
        started = time.monotonic()
        _, _, data = call(server, "POST", "/v1/messages", messages_body())
        elapsed = time.monotonic() - started
    assert len(sse(data)) == 6
    assert elapsed >= 6 * 0.05


@pytest.mark.parametrize("reset", [False, True])
def test_disconnect_mid_stream_truncates_the_body(reset: bool) -> None:
    with OpenAIServer([Disconnect(Text("partial"), after_events=2, reset=reset)]) as server:
        with pytest.raises((http.client.IncompleteRead, ConnectionError)):
            call(server, "POST", "/v1/responses", responses_body())
        # the next turn is served normally
        status, _, _ = call(server, "POST", "/v1/responses", responses_body())
        assert status == 200


def test_stall_holds_the_connection_until_stop() -> None:
    server = AnthropicServer([Stall(Text("partial"), after_events=1)]).start()
    outcome: list[BaseException | bytes] = []

    def client() -> None:
        try:
            outcome.append(call(server, "POST", "/v1/messages", messages_body(), timeout=30)[2])
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=client)
    thread.start()
    server.wait_for_requests(1, timeout=5)
    time.sleep(0.3)
    assert not outcome  # still waiting
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 2
    thread.join(5)
    assert not thread.is_alive()
    assert isinstance(outcome[0], http.client.IncompleteRead | ConnectionError)
    server.stop()  # idempotent
    assert not server.running


def test_unstreamed_stall_and_disconnect_send_no_answer() -> None:
    with AnthropicServer([Disconnect(), Stall()]) as server:
        with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
            call(server, "POST", "/v1/messages", messages_body(stream=False))
        with pytest.raises(TimeoutError):
            call(server, "POST", "/v1/messages", messages_body(stream=False), timeout=0.5)


def test_request_log_is_thread_safe() -> None:
    with OpenAIServer() as server:
        threads = [
            threading.Thread(
                target=call, args=(server, "POST", "/v1/responses", responses_body(False))
            )
            for _ in range(16)
        ]
        for t in threads:
            t.start()
        assert len(server.wait_for_requests(16, timeout=10)) == 16
        for t in threads:
            t.join()
        assert all(r.is_turn and r.step_index is None for r in server.requests)
        with pytest.raises(TimeoutError):
            server.wait_for_requests(17, timeout=0.1)


def test_listen_backlog_holds_a_burst_the_accept_loop_has_not_reached() -> None:
    # The accept loop starved of CPU is modelled by a server that never accepts: every one of
    # a burst of connections must still be established by the kernel. With socketserver's
    # backlog of 5 the seventh SYN is dropped (and under load, connections get reset).
    server = LoopbackHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    clients: list[socket.socket] = []
    try:
        for _ in range(32):
            clients.append(socket.create_connection(server.server_address[:2], timeout=0.5))
        assert len(clients) == 32
    finally:
        for client in clients:
            client.close()
        server.server_close()


def test_server_binds_only_loopback_and_reports_bad_scripts() -> None:
    with AnthropicServer() as server:
        assert server.base_url == f"http://127.0.0.1:{server.port}"
        status, _, _data = call(server, "POST", "/v1/messages", messages_body())
        assert status == 200
    with pytest.raises(RuntimeError):
        _ = server.port


# --------------------------------------------------------------------------------------------
# Real CLIs
# --------------------------------------------------------------------------------------------

CLAUDE = claude_binary()
CODEX = codex_binary()
needs_claude = pytest.mark.skipif(
    CLAUDE is None,
    reason=f"claude {CLAUDE_CODE_VERSION} not installed: run scripts/install-agent-clis "
    "(or set OXI_CLAUDE_BIN)",
)
needs_codex = pytest.mark.skipif(
    CODEX is None,
    reason=f"codex {CODEX_VERSION} not installed: run scripts/install-agent-clis "
    "(or set OXI_CODEX_BIN)",
)
CLI_TIMEOUT = 60.0


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    return path


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def start(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    # Own process group: the codex npm wrapper (node) runs the native binary as a child, and
    # killing only the wrapper would leave that child running.
    return subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def kill_group(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def finish(proc: subprocess.Popen[str], timeout: float = CLI_TIMEOUT) -> Outcome:
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        kill_group(proc)
        if proc.returncode is None:
            proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, json_lines(out), err


def run(argv: list[str], cwd: Path, env: dict[str, str]) -> Outcome:
    return finish(start(argv, cwd, env))


def of_type(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e.get("type") == kind]


# -- Claude Code ------------------------------------------------------------------------------


def claude_argv(*extra: str, prompt: str = "do the task") -> list[str]:
    assert CLAUDE is not None
    return [str(CLAUDE), "-p", prompt, "--output-format", "stream-json", "--verbose", *extra]


@pytest.fixture
def claude_run(repo: Path, home: Path) -> Runner:
    def go(server: AnthropicServer, *extra: str) -> Outcome:
        return run(claude_argv(*extra), repo, claude_env(server.base_url, home))

    return go


@pytest.mark.real_cli
@needs_claude
def test_claude_text_reply(claude_run: Runner) -> None:
    usage = Usage(input_tokens=123, output_tokens=45, cached_tokens=6, cache_creation_tokens=7)
    with AnthropicServer([Reply(Text("hi from the script"), usage=usage)]) as server:
        code, events, _ = claude_run(server)
    assert code == 0
    init = events[0]
    assert (init["type"], init["subtype"]) == ("system", "init")
    assert init["claude_code_version"] == CLAUDE_CODE_VERSION
    assert init["apiKeySource"] == "ANTHROPIC_API_KEY"
    result = of_type(events, "result")[-1]
    assert result["is_error"] is False
    assert result["subtype"] == "success"
    assert result["result"] == "hi from the script"
    assert result["num_turns"] == 1
    assert result["usage"]["input_tokens"] == 123
    assert result["usage"]["output_tokens"] == 45
    assert result["usage"]["cache_read_input_tokens"] == 6
    assert result["usage"]["cache_creation_input_tokens"] == 7
    # what Claude Code sent: a probe of the base URL, then one streamed turn with tools
    assert [(r.method, r.path) for r in server.requests] == [
        ("HEAD", "/"),
        ("POST", "/v1/messages"),
    ]
    turn = server.turns[0]
    assert turn.query == "beta=true"
    assert turn.header("x-api-key") == "test"
    assert turn.header("anthropic-version") == "2023-06-01"
    assert turn.body["stream"] is True
    assert {"Bash", "Write", "Edit", "Read"} <= {t["name"] for t in turn.body["tools"]}


@pytest.mark.real_cli
@needs_claude
def test_claude_tool_calls_edit_the_repository(claude_run: Runner, repo: Path) -> None:
    script = [
        ToolCall.write("hello.txt", "hi\n"),
        ToolCall.run("echo ok > made_by_bash.txt"),
        Text("all done"),
    ]
    with AnthropicServer(script) as server:
        code, events, _ = claude_run(server, "--permission-mode", "acceptEdits")
    assert code == 0
    assert (repo / "hello.txt").read_text() == "hi\n"
    assert (repo / "made_by_bash.txt").read_text() == "ok\n"
    tool_uses = [
        block
        for event in of_type(events, "assistant")
        for block in event["message"]["content"]
        if block["type"] == "tool_use"
    ]
    assert [t["name"] for t in tool_uses] == ["Write", "Bash"]
    assert tool_uses[0]["input"]["file_path"] == str(repo / "hello.txt")
    results = [
        block
        for event in of_type(events, "user")
        for block in event["message"]["content"]
        if block["type"] == "tool_result"
    ]
    assert [r.get("is_error", False) for r in results] == [False, False]
    result = of_type(events, "result")[-1]
    assert (result["is_error"], result["result"], result["num_turns"]) == (False, "all done", 3)
    assert result["permission_denials"] == []
    # each later turn carries the previous tool result back
    assert server.steps_used == 3
    last_user = [m for m in server.turns[1].body["messages"] if m["role"] == "user"][-1]
    assert last_user["content"][0]["type"] == "tool_result"


@pytest.mark.real_cli
@needs_claude
@pytest.mark.parametrize(
    ("error", "status"),
    [
        (ErrorReply.unauthorized(), 401),
        (ErrorReply.rate_limited(retry_after=1), 429),
        (ErrorReply.server_error(), 500),
        (ErrorReply.overloaded(), 529),
    ],
)
def test_claude_api_errors(claude_run: Runner, error: ErrorReply, status: int) -> None:
    with AnthropicServer([error]) as server:
        code, events, _ = claude_run(server)
    assert code == 1
    assert len(server.turns) == 1  # CLAUDE_CODE_MAX_RETRIES=0: no retry
    synthetic = of_type(events, "assistant")[-1]
    assert synthetic["message"]["model"] == "<synthetic>"
    result = of_type(events, "result")[-1]
    assert result["subtype"] == "success"  # sic: classify on is_error / api_error_status
    assert result["is_error"] is True
    assert result["api_error_status"] == status
    assert error.text in result["result"]


@pytest.mark.real_cli
@needs_claude
def test_claude_retries_a_broken_stream_without_streaming(claude_run: Runner) -> None:
    recovered = Reply(Text("recovered"), usage=Usage(input_tokens=555, output_tokens=66))
    with AnthropicServer([Disconnect(Text("partial"), after_events=3), recovered]) as server:
        code, events, _ = claude_run(server)
    assert code == 0
    result = of_type(events, "result")[-1]
    assert (result["is_error"], result["result"]) == (False, "recovered")
    # quirk: after the non-streamed fallback, result.usage is all zeros; modelUsage is right
    assert result["usage"]["input_tokens"] == 0
    [model_usage] = result["modelUsage"].values()
    assert (model_usage["inputTokens"], model_usage["outputTokens"]) == (555, 66)
    first, second = server.turns
    assert first.body["stream"] is True
    assert "stream" not in second.body  # the fallback request is not streamed


@pytest.mark.real_cli
@needs_claude
def test_claude_server_dies_mid_stream(repo: Path, home: Path) -> None:
    server = AnthropicServer([Stall(Text("partial"), after_events=3)]).start()
    try:
        proc = start(claude_argv(), repo, claude_env(server.base_url, home))
        server.wait_for_requests(where=lambda r: r.is_turn, timeout=CLI_TIMEOUT)
        time.sleep(0.3)
    finally:
        server.stop()
    code, events, _ = finish(proc)
    assert code == 1
    result = of_type(events, "result")[-1]
    assert result["is_error"] is True
    assert result["api_error_status"] is None
    assert "Unable to connect to API" in result["result"]


@pytest.mark.real_cli
@needs_claude
def test_claude_stalled_stream_must_be_killed(repo: Path, home: Path) -> None:
    with AnthropicServer([Stall(Text("partial"), after_events=3)]) as server:
        proc = start(claude_argv(), repo, claude_env(server.base_url, home))
        server.wait_for_requests(where=lambda r: r.is_turn, timeout=CLI_TIMEOUT)
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=1.5)  # silent server, silent CLI: it waits (for minutes)
        kill_group(proc)
        code, events, _ = finish(proc)
    assert code == -signal.SIGKILL
    assert not of_type(events, "result")


# -- Codex ------------------------------------------------------------------------------------


def codex_argv(*extra: str, prompt: str = "do the task") -> list[str]:
    assert CODEX is not None
    return [str(CODEX), "exec", "--json", *extra, prompt]


@pytest.fixture
def codex_run(repo: Path, home: Path, tmp_path: Path) -> Runner:
    def go(server: OpenAIServer, *extra: str, idle_ms: int | None = None) -> Outcome:
        config = server.codex_config(stream_idle_timeout_ms=idle_ms)
        env = codex_env(config, tmp_path / "codex-home", home)
        return run(codex_argv(*extra), repo, env)

    return go


@pytest.mark.real_cli
@needs_codex
def test_codex_text_reply(codex_run: Runner) -> None:
    usage = Usage(input_tokens=120, output_tokens=30, cached_tokens=20, reasoning_tokens=7)
    reply = Reply([Reasoning("**Thinking** it over"), Text("hi from the script")], usage=usage)
    with OpenAIServer([reply]) as server:
        code, events, _ = codex_run(server)
    assert code == 0
    assert [e["type"] for e in events] == [
        "thread.started",
        "turn.started",
        "item.completed",
        "item.completed",
        "turn.completed",
    ]
    items = [e["item"] for e in of_type(events, "item.completed")]
    assert [(i["type"], i["text"]) for i in items] == [
        ("reasoning", "**Thinking** it over"),
        ("agent_message", "hi from the script"),
    ]
    assert events[-1]["usage"] == {
        "input_tokens": 120,
        "cached_input_tokens": 20,
        "cache_write_input_tokens": 0,
        "output_tokens": 30,
        "reasoning_output_tokens": 7,
    }
    assert [(r.method, r.path) for r in server.requests] == [("POST", "/v1/responses")]
    turn = server.turns[0]
    assert turn.header("authorization") == "Bearer test"
    assert turn.body["model"] == "gpt-5.5"
    assert turn.body["stream"] is True
    offered = {t.get("name") for t in turn.body["tools"]}
    assert {"exec_command", "apply_patch"} <= offered


@pytest.mark.real_cli
@needs_codex
def test_codex_tool_calls_edit_the_repository(codex_run: Runner, repo: Path) -> None:
    script = [
        ToolCall.write("hello.txt", "hi\n"),  # apply_patch
        ToolCall.write("notes/raw.txt", "no final newline"),  # exec_command + printf
        ToolCall.run("echo ok > made_by_codex.txt"),
        Text("all done"),
    ]
    with OpenAIServer(script) as server:
        code, events, _ = codex_run(server, "--sandbox", "workspace-write")
    assert code == 0
    assert (repo / "hello.txt").read_text() == "hi\n"
    assert (repo / "notes/raw.txt").read_text() == "no final newline"
    assert (repo / "made_by_codex.txt").read_text() == "ok\n"
    items = [e["item"] for e in of_type(events, "item.completed")]
    assert [i["type"] for i in items] == [
        "file_change",
        "command_execution",
        "command_execution",
        "agent_message",
    ]
    assert items[0]["changes"] == [{"path": str(repo / "hello.txt"), "kind": "add"}]
    assert items[0]["status"] == "completed"
    assert items[2]["command"] == "/bin/bash -lc 'echo ok > made_by_codex.txt'"
    assert (items[2]["exit_code"], items[2]["aggregated_output"]) == (0, "")
    assert items[3]["text"] == "all done"
    outputs = [i["type"] for i in server.turns[1].body["input"] if "output" in i["type"]]
    assert outputs == ["custom_tool_call_output"]


@pytest.mark.real_cli
@needs_codex
@pytest.mark.parametrize(
    ("error", "message"),
    [
        (ErrorReply.unauthorized(), "unexpected status 401 Unauthorized: scripted authentication"),
        (ErrorReply.rate_limited(retry_after=1), "exceeded retry limit, last status: 429"),
        (ErrorReply.server_error(), "high demand"),
        (ErrorReply.overloaded(), "unexpected status 529"),
    ],
)
def test_codex_api_errors(codex_run: Runner, error: ErrorReply, message: str) -> None:
    with OpenAIServer([error]) as server:
        code, events, _ = codex_run(server)
    assert code == 1
    assert len(server.turns) == 1
    assert message in of_type(events, "error")[-1]["message"]
    assert message in of_type(events, "turn.failed")[-1]["error"]["message"]


@pytest.mark.real_cli
@needs_codex
def test_codex_server_dies_mid_stream(repo: Path, home: Path, tmp_path: Path) -> None:
    server = OpenAIServer([Stall(Text("partial"), after_events=3)]).start()
    try:
        env = codex_env(server.codex_config(), tmp_path / "codex-home", home)
        proc = start(codex_argv(), repo, env)
        server.wait_for_requests(where=lambda r: r.is_turn, timeout=CLI_TIMEOUT)
        time.sleep(0.3)
    finally:
        server.stop()
    code, events, _ = finish(proc)
    assert code == 1
    failed = of_type(events, "turn.failed")[-1]
    assert "stream disconnected before completion" in failed["error"]["message"]


@pytest.mark.real_cli
@needs_codex
def test_codex_stalled_stream_must_be_killed(repo: Path, home: Path, tmp_path: Path) -> None:
    with OpenAIServer([Stall(Text("partial"), after_events=3)]) as server:
        env = codex_env(server.codex_config(), tmp_path / "codex-home", home)
        proc = start(codex_argv(), repo, env)
        server.wait_for_requests(where=lambda r: r.is_turn, timeout=CLI_TIMEOUT)
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=1.5)
        kill_group(proc)
        code, events, _ = finish(proc)
    assert code == -signal.SIGKILL
    assert [e["type"] for e in events] == ["thread.started", "turn.started"]


@pytest.mark.real_cli
@needs_codex
def test_codex_stream_idle_timeout_fails_the_turn(codex_run: Runner) -> None:
    with OpenAIServer([Stall(Text("partial"), after_events=3)]) as server:
        started = time.monotonic()
        code, events, _ = codex_run(server, idle_ms=1000)
        elapsed = time.monotonic() - started
    assert code == 1
    assert elapsed < 10
    failed = of_type(events, "turn.failed")[-1]
    assert "idle timeout waiting for SSE" in failed["error"]["message"]
