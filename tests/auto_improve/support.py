"""What auto-improve tests share: a JSON feed source served from 127.0.0.1, a scripted judge
that is a real inference target (so calls go through routing, budget and ledger costing),
fixed embeddings, and a registry holding both."""

from __future__ import annotations

import hashlib
import json
import math
import re
import struct
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from http.server import BaseHTTPRequestHandler
from typing import Any

import attrs

from oxi_core.errors import SourceError
from oxi_core.models import Candidate, InferenceResult
from oxi_core.plugins import load_plugins
from oxi_core.registry import Registration, Registry, build_registry
from oxi_core.testing.model_server import LoopbackHTTPServer

# -- fixed embeddings -----------------------------------------------------------------------

_WORD = re.compile(r"[a-z0-9]+")


def bag_vector(text: str, dimensions: int = 384) -> bytes:
    """A deterministic unit vector: the text's words hashed into ``dimensions`` buckets. Texts
    with the same words have cosine 1.0; texts sharing no word are close to 0."""
    values = [0.0] * dimensions
    for word in _WORD.findall(text.lower()):
        digest = hashlib.sha256(word.encode()).digest()
        values[int.from_bytes(digest[:4], "little") % dimensions] += 1.0
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return struct.pack(f"<{dimensions}f", *(v / norm for v in values))


def bag_embed(texts: Sequence[str]) -> list[bytes]:
    return [bag_vector(text) for text in texts]


# -- a source served from 127.0.0.1 ---------------------------------------------------------


@attrs.define
class JsonFeedSource:
    """GETs ``url``: a JSON list of {id, title, summary, url, published_at, kind, target}."""

    url: str
    name: str = "feed"

    def fetch(self, since: datetime) -> list[Candidate]:
        import httpx

        response = httpx.get(self.url, timeout=10)
        if response.status_code != 200:
            raise SourceError(f"HTTP {response.status_code} from {self.url}", source=self.name,
                              details={"status": response.status_code})
        return [Candidate(source=self.name, identifier=item["id"], title=item["title"],
                          summary=item.get("summary", ""), url=item.get("url", ""),
                          published_at=datetime.fromisoformat(item["published_at"]),
                          signal_kind=item.get("kind", "post"), target=item.get("target", ""))
                for item in response.json()
                if datetime.fromisoformat(item["published_at"]) > since]


class _Handler(BaseHTTPRequestHandler):
    routes: Mapping[str, tuple[int, str]] = {}

    def do_GET(self) -> None:
        status, body = self.routes.get(self.path, (404, "not found"))
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_args: Any) -> None:
        pass


@contextmanager
def serve(routes: dict[str, tuple[int, str]]) -> Iterator[str]:
    """An HTTP server on 127.0.0.1 answering ``routes`` (path -> (status, body)); yields its
    base URL and stops when the block ends. ``routes`` may be changed while it runs."""
    handler = type("Handler", (_Handler,), {"routes": routes})
    server = LoopbackHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def feed_item(ident: str, title: str, summary: str = "", *, published: str,
              kind: str = "post", target: str = "") -> dict[str, str]:
    return {"id": ident, "title": title, "summary": summary, "url": f"https://example.com/{ident}",
            "published_at": published, "kind": kind, "target": target}


# -- the scripted judge -----------------------------------------------------------------------


def rubric(relevance: int = 4, concreteness: int = 4, tier: int = 1, *, duplicate: bool = False,
           fabricated_module: bool = False, rationale: str = "Worth doing here.",
           **extra: Any) -> str:
    return json.dumps({"relevance": relevance, "concreteness": concreteness,
                       "suggested_tier": tier, "duplicate": duplicate,
                       "fabricated_module": fabricated_module, "rationale": rationale,
                       **extra})


_FENCED_TITLE = re.compile(r"<<<CANDIDATE \w+>>>\ntitle: (?P<title>[^\n]*)")


@attrs.define
class ScriptedJudgeTarget:
    """An inference target answering the screen and the judge from its kwargs: ``verdicts``
    maps a candidate title to the judge's JSON answer (else ``default``); a candidate whose
    fenced text holds one of ``injections`` is flagged by the screen. Each call costs
    ``cost_usd``, reported as the gateway's figure."""

    verdicts: Mapping[str, str] = attrs.field(factory=dict)
    default: str = rubric(1, 1, rationale="Not relevant to this project.")
    injections: tuple[str, ...] = ()
    cost_usd: float = 0.001
    calls: list[tuple[str, str]] = attrs.field(factory=list, init=False)

    async def complete(self, messages: Sequence[Mapping[str, Any]], model: str,
                       max_tokens: int, **kwargs: Any) -> InferenceResult:
        system, user = str(messages[0]["content"]), str(messages[-1]["content"])
        found = _FENCED_TITLE.search(user)
        title = found.group("title") if found else ""
        if "screen untrusted text" in system:
            flagged = any(marker in user for marker in self.injections)
            text = json.dumps({"injection": flagged, "reason": "instructions to a model"
                               if flagged else "an ordinary post"})
            self.calls.append(("screen", title))
        else:
            text = self.verdicts.get(title, self.default)
            self.calls.append(("judge", title))
        return InferenceResult(text=text, model=model, cost_usd=self.cost_usd,
                               cost_source="gateway", tokens_in=100, tokens_out=50)


def registry_with_test_plugins() -> Registry:
    """The installed plugins' registry plus ``feed`` (source) and ``scripted_judge``
    (inference target)."""
    registry = build_registry(load_plugins())
    for kind, name, cls in (("sources", "feed", JsonFeedSource),
                            ("inference", "scripted_judge", ScriptedJudgeTarget)):
        registry.kinds[kind][name] = Registration(kind, name, cls, "tests", "oxi-tests")
    return registry
