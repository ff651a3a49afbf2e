"""Conditional GETs with a small on-disk cache, so an unchanged feed or page costs a 304.

Each URL's validators (ETag, Last-Modified) are kept with the body they validate, in one folder
(the source's: ``.oxi/cache/newsletter/`` by default). A 304 answers with the cached body, so a
scan reads the same items again and the pipeline's own since-filter and dedup decide what is
new: a scan that failed after fetching loses nothing. The cache is disposable (deleting it
costs one full GET per URL), which is why it lives beside the ledger, not in it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from oxi_core.errors import SourceError

if TYPE_CHECKING:
    import httpx

MAX_BODY_BYTES = 16 << 20  # a feed or page larger than this is refused, never read whole
USER_AGENT = "oxi-newsletter/0.3 (an oxi auto-improve source)"


@attrs.frozen
class Page:
    url: str  # where the body came from (after redirects)
    body: bytes
    content_type: str = ""
    from_cache: bool = False  # the server answered 304

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


@attrs.frozen
class _Entry:
    url: str
    final_url: str
    etag: str
    last_modified: str
    content_type: str
    sha256: str  # of the body: an entry and a body from different writes never pair up


class Fetcher:
    """GETs for one source's scan. Every failure is a SourceError naming the URL."""

    def __init__(self, *, source: str, timeout_s: float, cache_dir: Path | None) -> None:
        import httpx

        self.source = source
        self.timeout_s = timeout_s
        self.cache_dir = cache_dir
        self.requests = 0
        self.not_modified = 0
        self._client = httpx.Client(timeout=timeout_s, follow_redirects=True,
                                    headers={"User-Agent": USER_AGENT})

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._client.close()

    def get(self, url: str) -> Page:
        import httpx

        cached = self._load(url)
        headers: dict[str, str] = {}
        if cached is not None:
            if cached[0].etag:
                headers["If-None-Match"] = cached[0].etag
            if cached[0].last_modified:
                headers["If-Modified-Since"] = cached[0].last_modified
        self.requests += 1
        try:
            with self._client.stream("GET", url, headers=headers) as response:
                if response.status_code == 304 and cached is not None:
                    self.not_modified += 1
                    entry, body = cached
                    return Page(entry.final_url, body, entry.content_type, from_cache=True)
                if response.status_code >= 400 or response.status_code == 304:
                    raise self._status_error(url, response)
                body = self._read(url, response)
        except httpx.TimeoutException as error:
            raise SourceError(f"GET {url} timed out after {self.timeout_s:g} s",
                              source=self.source, details={"url": url},
                              hint="the site is slow or down; raise kwargs.timeout_s if it "
                                   "is only slow") from error
        except httpx.HTTPError as error:
            raise SourceError(f"GET {url} failed: {type(error).__name__}: {error}",
                              source=self.source, details={"url": url}) from error
        page = Page(str(response.url), body, response.headers.get("content-type", ""))
        self._store(url, page, response.headers.get("etag", ""),
                    response.headers.get("last-modified", ""))
        return page

    def _read(self, url: str, response: httpx.Response) -> bytes:
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise SourceError(f"GET {url} answered more than {MAX_BODY_BYTES >> 20} MB",
                                  source=self.source, details={"url": url})
            chunks.append(chunk)
        return b"".join(chunks)

    def _status_error(self, url: str, response: httpx.Response) -> SourceError:
        response.read()
        status = response.status_code
        hint = {404: "the publication moved or changed its layout; check kwargs.base_url",
                401: "the page needs a login", 403: "the site refused oxi's requests",
                429: "rate limited: scan less often"}.get(status)
        return SourceError(f"GET {url} answered {status} {response.reason_phrase}".rstrip(),
                           source=self.source, hint=hint,
                           details={"url": url, "status": status,
                                    "body_head": response.text[:200]})

    # -- the cache ------------------------------------------------------------------------

    def _paths(self, url: str) -> tuple[Path, Path] | None:
        if self.cache_dir is None:
            return None
        key = hashlib.sha256(url.encode()).hexdigest()[:32]
        return self.cache_dir / f"{key}.json", self.cache_dir / f"{key}.body"

    def _load(self, url: str) -> tuple[_Entry, bytes] | None:
        paths = self._paths(url)
        if paths is None:
            return None
        try:
            data: dict[str, Any] = json.loads(paths[0].read_text(encoding="utf-8"))
            entry = _Entry(**data)
            body = paths[1].read_bytes()
        except (OSError, ValueError, TypeError):
            return None  # no entry, or a damaged one: fetch in full
        if entry.url != url or hashlib.sha256(body).hexdigest() != entry.sha256:
            return None
        return entry, body

    def _store(self, url: str, page: Page, etag: str, last_modified: str) -> None:
        paths = self._paths(url)
        if paths is None:
            return
        if not (etag or last_modified):
            # Nothing to validate against: drop any old entry rather than keep a stale body.
            for path in paths:
                path.unlink(missing_ok=True)
            return
        entry = _Entry(url, page.url, etag, last_modified, page.content_type,
                       hashlib.sha256(page.body).hexdigest())
        paths[0].parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(paths[1], page.body)
        _write_atomic(paths[0], json.dumps(attrs.asdict(entry)).encode())


def _write_atomic(path: Path, data: bytes) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
