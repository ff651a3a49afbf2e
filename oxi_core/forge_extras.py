"""What oxi asks of a forge beyond the Forge protocol (`protocols.ForgeExtras`), and what it
does for a forge that lacks a method: one place, so every caller gets the same fallback."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # every tick asks the forge for its report; only the annotations need these
    from oxi_core.models import ForgeReport, MergeAttempt, PullRequest


def _method(forge: Any, name: str) -> Any:
    found = getattr(forge, name, None)
    return found if callable(found) else None


def git_env(forge: Any) -> dict[str, str]:
    """Variables for git processes that fetch from or push to the forge's remote."""
    method = _method(forge, "git_env")
    return dict(method()) if method else {}


def post_review(forge: Any, number: int, body: str) -> None:
    """The critic's findings as a review of the pull request; a comment where reviews are not
    supported."""
    method = _method(forge, "review")
    if method:
        method(number, body)
    else:
        forge.comment(number, body)


def merge_now(forge: Any, number: int, head_sha: str) -> MergeAttempt | None:
    """A guarded direct merge, or None when the forge cannot merge directly."""
    method = _method(forge, "merge_now")
    return method(number, head_sha=head_sha) if method else None


def disarm_auto_merge(forge: Any, number: int) -> bool:
    method = _method(forge, "disarm_auto_merge")
    return bool(method(number)) if method else False


def delete_branch(forge: Any, branch: str) -> bool:
    """Delete a merged pull request's branch; False when the forge does not (or did itself)."""
    method = _method(forge, "delete_branch")
    if method is None:
        return False
    method(branch)
    return True


def merge_if_ready(forge: Any, number: int) -> PullRequest | None:
    method = _method(forge, "merge_if_ready")
    result: PullRequest | None = method(number) if method else None
    return result


def take_report(forge: Any) -> ForgeReport | None:
    method = _method(forge, "take_report")
    result: ForgeReport | None = method() if method else None
    return result
