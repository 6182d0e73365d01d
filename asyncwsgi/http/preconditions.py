"""Conditional requests: If-Match, If-Unmodified-Since, If-None-Match, If-Modified-Since. [loop]

Pure. RFC 9110 §13.2.2 fixes the order a server evaluates them in, and this module keeps it:

    1. If-Match         no current ETag matches (strong comparison)    -> 412
    2. If-Unmodified-Since (only without If-Match)  modified since     -> 412
    3. If-None-Match    an ETag matches (weak comparison)              -> 304 for GET and HEAD
    4. If-Modified-Since (only without If-None-Match; GET and HEAD)   -> 304 if not modified since

An HTTP-date that does not parse is ignored (§13.1.3, §13.1.4), and so is a date on a resource
whose time is later than now. ``If-Range`` (§13.1.5) decides whether a Range applies at all.
"""

from __future__ import annotations

import datetime
import email.utils
from typing import List, Optional

NOT_MODIFIED = 304
PRECONDITION_FAILED = 412


def http_date(seconds: float) -> bytes:
    """An IMF-fixdate (RFC 9110 §5.6.7): ``Sun, 06 Nov 1994 08:49:37 GMT``."""
    return email.utils.formatdate(int(seconds), usegmt=True).encode("ascii")


def parse_date(value: Optional[bytes]) -> Optional[int]:
    """Seconds since the epoch of an HTTP-date (any of the three forms §5.6.7 accepts), or None."""
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value.decode("latin-1"))
    except (TypeError, ValueError, IndexError):
        return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:  # asctime's form has no zone: it is GMT (§5.6.7)
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return int(parsed.timestamp())


def _tags(value: bytes) -> List[bytes]:
    """The entity-tags of a list header (``"a", W/"b"``), as written, quotes included."""
    tags = []
    for part in value.split(b","):
        part = part.strip()
        if part:
            tags.append(part)
    return tags


def _opaque(tag: bytes) -> bytes:
    return tag[2:] if tag.startswith(b"W/") else tag


def matches_strongly(value: bytes, etag: bytes) -> bool:
    """If-Match (§13.1.1): ``*``, or one of the tags is ``etag`` and neither is weak."""
    tags = _tags(value)
    return tags == [b"*"] or (not etag.startswith(b"W/") and etag in tags)


def matches_weakly(value: bytes, etag: bytes) -> bool:
    """If-None-Match (§13.1.2): ``*``, or one of the tags has ``etag``'s opaque part."""
    tags = _tags(value)
    return tags == [b"*"] or any(_opaque(tag) == _opaque(etag) for tag in tags)


def evaluate(
    method: bytes,
    etag: bytes,
    modified: int,
    if_match: Optional[bytes],
    if_unmodified_since: Optional[bytes],
    if_none_match: Optional[bytes],
    if_modified_since: Optional[bytes],
) -> Optional[int]:
    """The status the preconditions answer with (304 or 412), or None to go on with the request.

    ``modified`` is the resource's Last-Modified time in whole seconds.
    """
    if if_match is not None:
        if not matches_strongly(if_match, etag):
            return PRECONDITION_FAILED
    else:
        since = parse_date(if_unmodified_since)
        if since is not None and modified > since:
            return PRECONDITION_FAILED
    if if_none_match is not None:
        if matches_weakly(if_none_match, etag):
            return NOT_MODIFIED if method in (b"GET", b"HEAD") else PRECONDITION_FAILED
    elif method in (b"GET", b"HEAD"):
        since = parse_date(if_modified_since)
        if since is not None and modified <= since:
            return NOT_MODIFIED
    return None


def range_applies(if_range: Optional[bytes], etag: bytes, modified: int, now: float) -> bool:
    """If-Range (§13.1.5): the Range is honoured only if the representation is the one the
    client holds part of: a strong ETag equal to ours, or exactly our Last-Modified when that is
    a strong validator (at least a second before now, §8.8.2.2). Without If-Range it applies."""
    if if_range is None:
        return True
    value = if_range.strip()
    if value.startswith((b'"', b"W/")):
        return not value.startswith(b"W/") and not etag.startswith(b"W/") and value == etag
    date = parse_date(value)
    return date is not None and date == modified and modified < now - 1
