"""XSource: the posts of a curated list of X accounts, read by running the operator's X tool.

oxi never talks to X itself: the operator's tool (an X API client, a scraper, a Claude skill's
script) does, and prints JSON. The tool runs through oxi's subprocess runner: argv only, its
own process group, stdin closed, an allow-listed environment, one wall-clock timeout. No argv
configured means the source is off and nothing runs. A failed run (non-zero exit, timeout,
output that does not parse) raises SourceError with the exit code, once: never retried within
the scan.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attrs

from oxi_core.agentic.runner import RunOutcome, RunSpec, build_env, run_streaming
from oxi_core.errors import SourceError
from oxi_core.log import get_logger
from oxi_core.models import Candidate
from oxi_core.protocols import PluginContext
from oxi_x.posts import OutputError, Post, parse_output

SOURCE = "x"
SIGNAL_KIND = "x_post"
_X_HOSTS = frozenset({"x.com", "twitter.com", "t.co", "mobile.twitter.com"})
_HANDLE = re.compile(r"^[A-Za-z0-9_]{1,15}$")
TITLE_CHARS = 100
STDERR_CHARS = 2000
# Placeholders an argv element may hold; an element that is exactly "{accounts}" becomes one
# element per account. Replaced literally (never str.format on configured text).
PLACEHOLDERS = ("{since}", "{since_epoch}", "{since_date}", "{accounts}", "{accounts_csv}",
                "{query}")


def _bad_handle(handles: tuple[str, ...]) -> str | None:
    return next((h for h in handles if not _HANDLE.match(h.removeprefix("@"))), None)


def _handles(_instance: Any, attribute: attrs.Attribute[Any], value: tuple[str, ...]) -> None:
    bad = _bad_handle(value)
    if bad is not None:
        raise ValueError(f"{attribute.name} holds {bad!r}, which is not an X handle "
                         "(1-15 letters, digits or _, with or without @)")


def _positive(_instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if value <= 0:
        raise ValueError(f"{attribute.name} must be positive, got {value!r}")


@attrs.define
class XSource:
    """``[sources.NAME] type = "x"``: kwargs ``argv``, ``account_list``, ``accounts``,
    ``timeout_s``, ``env``, ``pass_env``, ``cwd``.

    The curated accounts are ``[auto_improve] accounts.<account_list>`` (``x`` by default),
    read in ``bind``; ``accounts`` in the kwargs, when given, is used instead.
    """

    argv: tuple[str, ...] = ()  # the operator's X tool; empty: the source is off
    account_list: str = "x"  # the list's name in [auto_improve] accounts
    # Accounts to read, beside the [auto_improve] list.
    accounts: tuple[str, ...] = attrs.field(default=(), validator=_handles)
    # Seconds the tool may run.
    timeout_s: float = attrs.field(default=120.0, validator=_positive)
    env: Mapping[str, str] = attrs.field(factory=dict, repr=False)  # secrets: { env = "..." }
    pass_env: tuple[str, ...] = ()  # variables passed through from oxi's environment
    cwd: Path | None = None  # default: the folder of oxi.toml
    _config_dir: Path | None = attrs.field(default=None, init=False, repr=False)
    _listed: tuple[str, ...] = attrs.field(default=(), init=False, repr=False)

    def bind(self, context: PluginContext) -> None:
        self._config_dir = context.config_dir
        self._listed = tuple(context.auto_improve.accounts.get(self.account_list, ()))

    @property
    def enabled(self) -> bool:
        return bool(self.argv)

    @property
    def handles(self) -> tuple[str, ...]:
        """The curated handles, without "@": the kwargs' own list, else the named one."""
        return tuple(handle.removeprefix("@") for handle in self.accounts or self._listed)

    def _check_accounts(self) -> None:
        where = ("kwargs.accounts" if self.accounts
                 else f"[auto_improve] accounts.{self.account_list}")
        if not self.handles:
            raise SourceError(f"no accounts to follow: {where} is empty or missing",
                              source=SOURCE, hint=f'add {self.account_list} = ["karpathy", '
                              '"swyx"] to [auto_improve] accounts in oxi.toml')
        bad = _bad_handle(self.accounts or self._listed)
        if bad is not None:
            raise SourceError(f"{where} holds {bad!r}, which is not an X handle", source=SOURCE,
                              hint="handles are 1-15 letters, digits or _, with or without @")

    def command(self, since: datetime) -> list[str]:
        """The argv the tool runs with: placeholders filled, or ``--since ISO HANDLE...``
        appended when the configured argv has none."""
        since = _aware(since)
        values = {
            "{since}": since.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "{since_epoch}": str(int(since.timestamp())),
            "{since_date}": since.strftime("%Y-%m-%d"),
            "{accounts_csv}": ",".join(self.handles),
            # X search syntax, for tools that take a query (twscrape search "..."); oxi still
            # filters by the exact time afterwards.
            "{query}": "(" + " OR ".join(f"from:{h}" for h in self.handles) + ")"
                       + f" since:{since.strftime('%Y-%m-%d')}",
        }
        template = list(self.argv)
        if not any(p in element for element in template[1:] for p in PLACEHOLDERS):
            template += ["--since", "{since}", "{accounts}"]
        argv = [template[0]]
        for element in template[1:]:
            if element == "{accounts}":
                argv.extend(self.handles)
                continue
            for placeholder, value in values.items():
                element = element.replace(placeholder, value)
            argv.append(element)
        return argv

    def fetch(self, since: datetime) -> list[Candidate]:
        if not self.enabled:
            return []
        self._check_accounts()
        since = _aware(since)
        argv = self.command(since)
        spec = RunSpec(
            argv=tuple(argv),
            cwd=self.cwd or self._config_dir or Path.cwd(),
            env=build_env(extra=self.env, allow=self.pass_env),
            timeout_s=self.timeout_s,
            stall_timeout_s=self.timeout_s,
            startup_timeout_s=self.timeout_s,
        )
        lines: list[str] = []
        outcome = _run(spec, lines)
        self._raise_for(outcome, argv)
        try:
            posts = parse_output("\n".join(lines))
        except OutputError as error:
            raise SourceError(
                f"the X tool's output is not X API v2 JSON nor scraper JSON lines: {error}",
                source=SOURCE, returncode=outcome.exit_code,
                details={"argv0": argv[0], "stdout_head": "\n".join(lines)[:300]},
                hint="make the tool print X API v2 responses or one post object per line",
            ) from error
        return self._candidates(posts, since)

    def _raise_for(self, outcome: RunOutcome, argv: list[str]) -> None:
        details: dict[str, Any] = {"argv0": argv[0], "duration_s": round(outcome.duration_s, 3)}
        if outcome.stderr_tail:
            details["stderr_tail"] = outcome.stderr_tail[-STDERR_CHARS:]
        if outcome.spawn_error:
            raise SourceError(f"cannot start the X tool {argv[0]!r}: {outcome.spawn_error}",
                              source=SOURCE, details=details,
                              hint="fix kwargs.argv: its first element must be an executable")
        if outcome.timed_out or outcome.stalled:
            raise SourceError(
                f"the X tool did not finish within {self.timeout_s:g} s; its process group "
                "was killed", source=SOURCE, returncode=outcome.exit_code, details=details,
                hint="raise kwargs.timeout_s, or follow fewer accounts")
        if outcome.line_too_long:
            raise SourceError("the X tool printed a line over 1 MB", source=SOURCE,
                              returncode=outcome.exit_code, details=details)
        if outcome.exit_code != 0:
            last = outcome.stderr_tail.strip().splitlines()[-1:] or ["no output on stderr"]
            raise SourceError(f"the X tool exited {outcome.exit_code}: {last[0][:300]}",
                              source=SOURCE, returncode=outcome.exit_code, details=details)

    def _candidates(self, posts: list[Post], since: datetime) -> list[Candidate]:
        followed = {handle.casefold() for handle in self.handles}
        found: list[Candidate] = []
        strangers = 0
        for post in posts:
            if post.author and post.author.casefold() not in followed:
                strangers += 1  # a search's match from outside the curated list
                continue
            if post.created_at is not None and post.created_at <= since:
                continue
            found.append(candidate(post))
        if strangers:
            get_logger("oxi_x").info("x_posts_outside_the_list_dropped", count=strangers)
        return found


def candidate(post: Post) -> Candidate:
    """One post as a Candidate: identified by its id (``https://x.com/i/status/ID`` does not
    change when the author renames their account)."""
    first_line = " ".join(post.text.strip().splitlines()[0].split()) if post.text.strip() else ""
    title = first_line if len(first_line) <= TITLE_CHARS else (
        first_line[: TITLE_CHARS - 1].rstrip() + "…")
    author = post.author or "i"
    metadata: dict[str, Any] = {
        "author": post.author, "author_name": post.author_name, "shape": post.shape,
        "links": [link.url for link in post.links], "metrics": dict(post.metrics),
    }
    if any(link.title for link in post.links):
        metadata["link_titles"] = [link.title for link in post.links if link.title]
    if post.referenced:
        metadata["referenced"] = post.referenced
    return Candidate(
        source=SOURCE,
        identifier=f"https://x.com/i/status/{post.id}",
        title=title or f"post {post.id}",
        summary=post.text.strip(),
        url=f"https://x.com/{author}/status/{post.id}",
        published_at=post.created_at,
        signal_kind=SIGNAL_KIND,
        target=target(post),
        metadata=metadata,
    )


def target(post: Post) -> str:
    """What a post is about, for the scan's temporal dedup: the GitHub repository it links
    (``owner/name``), else the first page it links (not X itself), else nothing (the post)."""
    pages = [urlsplit(link.url) for link in post.links]
    for page in pages:
        parts = [part for part in page.path.split("/") if part]
        if page.netloc.lower().removeprefix("www.") == "github.com" and len(parts) >= 2:
            return f"{parts[0]}/{parts[1]}".lower()
    for page in pages:
        host = page.netloc.lower().removeprefix("www.")
        if host and host not in _X_HOSTS:
            return f"{host}{page.path}".rstrip("/")
    return ""


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _run(spec: RunSpec, lines: list[str]) -> RunOutcome:
    """Run the tool to completion from sync code, also when called inside an event loop."""
    coroutine = run_streaming(spec, on_stdout=lines.append)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()
