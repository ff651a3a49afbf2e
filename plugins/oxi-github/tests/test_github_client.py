"""The HTTP client the forge (and later, sources of ideas) reads GitHub through: conditional
requests remembered across processes, rate limits respected across processes, retries, Link
pagination kept on the API's own origin, GraphQL errors, and its request counts."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from oxi_github.cache import ResponseCache
from oxi_github.client import (
    GitHubAuthError,
    GitHubClient,
    GitHubError,
    GraphQLError,
    RateLimited,
)
from oxi_github.testing import LoopbackGitHub
from oxi_github.token import Token

from oxi_core.errors import ForgeUnavailable


def client_for(hub: LoopbackGitHub, cache: Path, **kwargs: object) -> GitHubClient:
    return GitHubClient(api_url=hub.api_url, token=Token(hub.token, "a test"),
                        cache=ResponseCache(cache), backoff_s=0.01, **kwargs)  # type: ignore[arg-type]


def test_a_new_process_asks_conditionally_and_a_304_costs_nothing(hub: LoopbackGitHub,
                                                                    tmp_path: Path) -> None:
    hub.seed({"README.md": "x\n"})
    first = client_for(hub, tmp_path / "cache.sqlite")
    body = first.get(f"/repos/{hub.full_name}")
    first.close()
    second = client_for(hub, tmp_path / "cache.sqlite")  # what the next `oxi tick` builds

    assert second.get(f"/repos/{hub.full_name}") == body
    stats = second.take_stats()
    assert (stats.requests, stats.not_modified, stats.counted) == (1, 1, 0)
    assert hub.requests[-1].status == 304 and "if-none-match" in hub.requests[-1].headers
    assert len(hub.counted()) == 1  # only the first answer counted


def test_two_tokens_never_share_an_answer(hub: LoopbackGitHub, tmp_path: Path) -> None:
    hub.seed({"README.md": "x\n"})
    client_for(hub, tmp_path / "c.sqlite").get(f"/repos/{hub.full_name}")
    other = GitHubClient(api_url=hub.api_url, token=Token("ghp_someone_else", "another"),
                         cache=ResponseCache(tmp_path / "c.sqlite"), backoff_s=0.01)
    with pytest.raises(GitHubAuthError):
        other.get(f"/repos/{hub.full_name}")  # asked for real (401), not served from cache


def test_a_primary_limit_is_kept_until_its_reset_and_then_lifted(hub: LoopbackGitHub,
                                                                 tmp_path: Path) -> None:
    hub.seed({"README.md": "x\n"})
    hub.exhaust("core", reset_in_s=4)  # seconds to spare on a loaded host
    client = client_for(hub, tmp_path / "c.sqlite")
    with pytest.raises(RateLimited) as caught:
        client.get(f"/repos/{hub.full_name}")
    assert not caught.value.secondary and caught.value.resource == "core"
    sent = len(hub.requests)
    with pytest.raises(RateLimited):
        client_for(hub, tmp_path / "c.sqlite").get(f"/repos/{hub.full_name}")
    assert len(hub.requests) == sent
    assert client.take_stats().refused == 0  # the refusal counted in the second client
    import time

    time.sleep(max(0.0, (caught.value.retry_at or 0) - time.time()) + 0.2)
    assert client.get(f"/repos/{hub.full_name}")["name"] == hub.name


def test_a_429_with_retry_after_is_a_secondary_limit(hub: LoopbackGitHub,
                                                     tmp_path: Path) -> None:
    hub.seed({"README.md": "x\n"})
    hub.fail("secondary_rate_limit", match="GET", status=429, retry_after=120)
    with pytest.raises(RateLimited) as caught:
        client_for(hub, tmp_path / "c.sqlite").get(f"/repos/{hub.full_name}")
    assert caught.value.secondary


def test_a_link_away_from_the_api_is_not_followed(tmp_path: Path) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=[{"n": 1}], headers={
            "link": '<https://elsewhere.example/steal?page=2>; rel="next"'})

    client = GitHubClient(api_url="https://api.github.com", token=Token("t0ken", "a test"),
                          transport=httpx.MockTransport(answer))
    with pytest.raises(GitHubError) as caught:
        client.paginate("/repos/o/r/pulls")
    assert "points away from https://api.github.com" in str(caught.value)


def test_graphql_errors_keep_their_type_and_message(hub: LoopbackGitHub,
                                                    tmp_path: Path) -> None:
    hub.seed({"README.md": "x\n"})
    client = client_for(hub, tmp_path / "c.sqlite")
    with pytest.raises(GraphQLError) as caught:
        client.graphql("query { repository(owner: \"octo-org\", name: \"nope\") { id } }")
    assert caught.value.types and caught.value.messages
    data = client.graphql("query { viewer { login } }")
    assert data == {"viewer": {"login": "oxi-bot"}}
    assert client.take_stats().by_resource == {"graphql": 2}


def test_connection_failures_are_retried_then_unavailable(tmp_path: Path) -> None:
    calls = []

    def refuse(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        raise httpx.ConnectError("connection refused", request=request)

    client = GitHubClient(api_url="https://api.github.com", token=Token("t0ken", "a test"),
                          transport=httpx.MockTransport(refuse), backoff_s=0.0)
    with pytest.raises(ForgeUnavailable) as caught:
        client.get("/repos/o/r")
    assert len(calls) == 3 and "ConnectError" in str(caught.value)
    notices = [n.kind for n in client.take_stats().notices]
    assert notices == ["retried", "retried", "unavailable"]


def test_the_stats_payload_is_what_the_ledger_records(hub: LoopbackGitHub,
                                                      tmp_path: Path) -> None:
    hub.seed({"README.md": "x\n"})
    client = client_for(hub, tmp_path / "c.sqlite")
    client.get(f"/repos/{hub.full_name}")
    client.get(f"/repos/{hub.full_name}")
    payload = client.take_stats().as_payload()
    assert json.loads(json.dumps(payload)) == payload
    assert (payload["requests"], payload["counted"], payload["not_modified"]) == (2, 1, 1)
    assert payload["rate_limit"]["core"]["limit"] == 5000
