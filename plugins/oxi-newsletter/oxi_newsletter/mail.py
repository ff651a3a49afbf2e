"""Newsletter issues from the operator's mailbox (stdlib ``mailbox``): a Maildir folder or an
mbox file, whatever their mail client files them into. Read only; never marked or moved."""

from __future__ import annotations

import email
import email.policy
import email.utils
import mailbox
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import attrs

from oxi_core.errors import SourceError


@attrs.frozen
class MailIssue:
    message_id: str
    subject: str
    sender: str
    sent_at: datetime | None
    html: str
    text: str


def read_issues(path: Path, *, sender: str, since: datetime, source: str) -> list[MailIssue]:
    """Messages from ``sender`` (a substring of From, e.g. ``alphasignal.ai``) sent after
    ``since``, oldest first."""
    box = _open(path, source)
    issues = []
    try:
        for raw in _messages(box, path, source):
            message = email.message_from_bytes(raw, policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            if sender.casefold() not in str(message.get("From", "")).casefold():
                continue
            sent_at = _date(message)
            if sent_at is not None and sent_at <= since:
                continue
            issues.append(MailIssue(
                message_id=str(message.get("Message-ID", "")).strip(),
                subject=" ".join(str(message.get("Subject", "")).split()),
                sender=str(message.get("From", "")),
                sent_at=sent_at,
                html=_part(message, "html"),
                text=_part(message, "plain"),
            ))
    finally:
        box.close()
    epoch = datetime.min.replace(tzinfo=UTC)
    return sorted(issues, key=lambda issue: issue.sent_at or epoch)


def _open(path: Path, source: str) -> mailbox.Mailbox:
    if path.is_dir():
        if not (path / "cur").is_dir() or not (path / "new").is_dir():
            raise SourceError(f"{path} is a folder but not a Maildir (no cur/ and new/)",
                              source=source, hint="point kwargs.mailbox at the Maildir folder "
                                                  "itself, or at an mbox file")
        return mailbox.Maildir(path, factory=None, create=False)
    if path.is_file():
        return mailbox.mbox(path, factory=None, create=False)
    raise SourceError(f"no mailbox at {path}", source=source,
                      hint="kwargs.mailbox names the Maildir folder or mbox file your mail "
                           "client files the newsletter into")


def _messages(box: mailbox.Mailbox, path: Path, source: str) -> Iterator[bytes]:
    try:
        keys = list(box.keys())
    except OSError as error:
        raise SourceError(f"cannot read the mailbox {path}: {error}", source=source) from error
    for key in keys:
        try:
            yield box.get_bytes(key)
        except (OSError, KeyError):
            continue  # removed by the mail client while we read: it is gone, not lost by us


def _date(message: EmailMessage) -> datetime | None:
    value = message.get("Date")
    if not value:
        return None
    try:
        moment = email.utils.parsedate_to_datetime(str(value))
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _part(message: EmailMessage, subtype: str) -> str:
    part = message.get_body(preferencelist=(subtype,))
    if part is None or part.get_content_subtype() != subtype:
        return ""
    try:
        return str(part.get_content())
    except (LookupError, UnicodeError):  # an unknown charset: read what can be read
        payload = part.get_payload(decode=True)
        return payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else ""
