"""A worktree's git index, read from its file: which paths it holds, with their modes and
objects. Delivery compares the index after `git add -A` with the one `git worktree add`
wrote, which names the files a task changed without a `git status` or a diff (T2-49).

The format is git's own (Documentation/gitformat-index.txt): versions 2, 3 and 4, SHA-1 or
SHA-256. Whatever this reader does not follow is None, and the caller asks git instead: a
split index (its entries live in another file), a sparse index (directories as entries),
unmerged or intent-to-add entries, an unknown version, a truncated or odd file, an index git
is pointed to elsewhere (GIT_DIR, GIT_INDEX_FILE, GIT_WORK_TREE).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import attrs

# Stat data before each entry's object name: ctime, mtime (seconds, nanoseconds), dev, ino,
# mode, uid, gid, size, 32 bits each; the mode is the seventh.
_STAT_BYTES = 40
_MODE_AT = 24
_FLAG_EXTENDED = 0x4000
_FLAG_STAGE = 0x3000
_FLAG_NAME_LENGTH = 0x0FFF
_EXTENDED_INTENT_TO_ADD = 0x2000
# Extensions whose presence means the entries here are not the whole index.
_REFUSED_EXTENSIONS = (b"link", b"sdir")
_VERSIONS = (2, 3, 4)


@attrs.frozen(eq=False)
class IndexEntries:
    """Every path of an index (stage 0 only), as git stores it, with its mode and object."""

    entries: Mapping[bytes, bytes]  # path -> its mode (4 bytes) and object name

    def changed_since(self, before: IndexEntries) -> list[str]:
        """Paths added, removed, or with another mode or object since ``before``, sorted."""
        mine, theirs = self.entries, before.entries
        changed = {path for path, value in mine.items() if theirs.get(path) != value}
        changed.update(path for path in theirs if path not in mine)
        return sorted(path.decode("utf-8", "surrogateescape") for path in changed)

    def __contains__(self, path: str) -> bool:
        return path.encode("utf-8", "surrogateescape") in self.entries

    def __len__(self) -> int:
        return len(self.entries)


@attrs.frozen(eq=False)
class FreshIndex:
    """A worktree's index file as `git worktree add` (or a `reset --hard`) wrote it, on
    ``commit``, before anything ran there. Kept as the file's bytes, parsed when delivery
    compares (a third of the memory of its parsed entries: ~80 bytes a file)."""

    commit: str
    data: bytes

    def entries(self) -> IndexEntries | None:
        return parse_index(self.data, hash_bytes=len(self.commit) // 2)


def fresh_index(worktree: Path, repo: Path) -> FreshIndex | None:
    """``worktree``'s index and HEAD now, read from the files (right after git wrote them);
    None when the files cannot settle it."""
    from oxi_core.git import stored_head

    head = stored_head(worktree, repo)
    path = index_file(worktree)
    if head is None or path is None:
        return None
    try:
        return FreshIndex(head, path.read_bytes())
    except OSError:
        return None


def index_file(worktree: Path) -> Path | None:
    """The index file of ``worktree``; None when git would look elsewhere (GIT_INDEX_FILE)."""
    from oxi_core.git import worktree_git_dir

    git_dir = worktree_git_dir(worktree)
    return None if git_dir is None or "GIT_INDEX_FILE" in os.environ else git_dir / "index"


def read_index(worktree: Path, *, hash_bytes: int) -> IndexEntries | None:
    """The entries of ``worktree``'s index; ``hash_bytes``: the repository's object name
    length (20 for SHA-1, 32 for SHA-256). None when the file cannot be read or settle it."""
    path = index_file(worktree)
    if path is None:
        return None
    try:
        data = path.read_bytes()  # git replaces the file whole (a lock file renamed)
    except OSError:
        return None
    return parse_index(data, hash_bytes=hash_bytes)


def parse_index(data: bytes, *, hash_bytes: int) -> IndexEntries | None:
    """The entries of an index file's bytes; None for anything this reader does not follow."""
    try:
        return _parse(data, hash_bytes)
    except (IndexError, ValueError, UnicodeDecodeError):
        return None  # truncated or malformed


def _parse(data: bytes, hash_bytes: int) -> IndexEntries | None:
    if len(data) < 12 + hash_bytes or data[:4] != b"DIRC":
        return None
    version = int.from_bytes(data[4:8], "big")
    count = int.from_bytes(data[8:12], "big")
    if version not in _VERSIONS:
        return None
    end = len(data) - hash_bytes  # the trailing checksum
    entries: dict[bytes, bytes] = {}
    previous = b""
    at = 12
    # (Bytes and slices, not integers: this loop runs once per file of the repository.)
    for _ in range(count):
        start = at
        at = start + _STAT_BYTES + hash_bytes
        # The mode's file type (its bits 12-15) and the object name, as one value.
        value = data[start + _MODE_AT:start + _MODE_AT + 4] + data[start + _STAT_BYTES:at]
        high = data[at]  # the flags: assume-valid, extended, stage (2 bits), name length
        if high & _FLAG_STAGE >> 8:
            return None  # a conflict: git settles it
        length = (high & _FLAG_NAME_LENGTH >> 8) << 8 | data[at + 1]
        at += 2
        if high & _FLAG_EXTENDED >> 8:
            if version < 3 or data[at] & _EXTENDED_INTENT_TO_ADD >> 8:
                return None
            at += 2
        if version == 4:
            strip, at = _varint(data, at)
            if strip > len(previous):
                return None
            nul = data.index(b"\0", at)
            path = previous[:len(previous) - strip] + data[at:nul]
            at = nul + 1
        else:
            nul = data.index(b"\0", at)
            path = data[at:nul]
            if length != _FLAG_NAME_LENGTH and length != nul - at:
                return None
            # Entries are padded with 1 to 8 NULs to a multiple of 8 bytes.
            at = start + ((nul - start + 8) & ~7)
        if at > end or value[2] & 0xF0 == 0x40:  # mode 040000, a directory: a sparse index
            return None
        previous = path
        entries[path] = value
    while at + 8 <= end:
        signature = data[at:at + 4]
        if signature in _REFUSED_EXTENSIONS:
            return None
        at += 8 + int.from_bytes(data[at + 4:at + 8], "big")
    if at != end:
        return None
    return IndexEntries(entries)


def _varint(data: bytes, at: int) -> tuple[int, int]:
    """git's offset varint (varint.c) at ``at``: its value and the position after it."""
    byte = data[at]
    at += 1
    value = byte & 0x7F
    while byte & 0x80:
        byte = data[at]
        at += 1
        value = ((value + 1) << 7) | (byte & 0x7F)
    return value, at
