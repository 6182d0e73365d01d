"""What a static file is served as: its type, validators, caching and content coding. [any]

Pure (the file's stat is handed in):

* ``Content-Type`` from the extension, with ``charset=utf-8`` for text (a table of the types web
  pages use, the same on every machine; then Python's ``mimetypes``; then
  ``application/octet-stream``);
* a strong ``ETag`` from the file's modification time (nanoseconds) and size, with the coding of
  a precompressed copy (each representation has its own tag, RFC 9110 §8.8.3), and
  ``Last-Modified`` (§8.8.2);
* ``Cache-Control``: ``public, max-age=31536000, immutable`` for a name that carries a content hash
  (``app.3f2a9c1b0d4e.css`` from Django's ManifestStaticFilesStorage, ``index-BsmFIKk4.js`` from
  Vite, ``main.8f3a2b1c.js`` from webpack), which changes whenever the content does; the
  configured default for the rest;
* the coding to send: a precompressed ``FILE.br`` or ``FILE.gz`` beside the file when the client
  accepts it (``Accept-Encoding``, q-values honoured; brotli first at equal q). Nothing is ever
  compressed on the fly.

``represent`` puts them together as the head's fields, and keeps what it made for a file as it
is now (its name, size, modification time and coding are the key): a file served again is one
dictionary lookup, where building its fields (the date above all) was an eighth of a small
file's request (58,000 of 449,000 instructions, measured in process with callgrind).
"""

from __future__ import annotations

import mimetypes
import os
import string
from typing import Dict, List, NamedTuple, Optional, Tuple

from ..http.preconditions import http_date

IMMUTABLE = b"public, max-age=31536000, immutable"
# Content codings of precompressed copies, by preference, with their file suffixes.
CODINGS: Tuple[Tuple[bytes, str], ...] = ((b"br", ".br"), (b"gzip", ".gz"))

_UTF8 = "; charset=utf-8"
TYPES: Dict[str, str] = {
    ".html": "text/html" + _UTF8,
    ".htm": "text/html" + _UTF8,
    ".css": "text/css" + _UTF8,
    ".js": "text/javascript" + _UTF8,
    ".mjs": "text/javascript" + _UTF8,
    ".json": "application/json",
    ".map": "application/json",
    ".webmanifest": "application/manifest+json",
    ".txt": "text/plain" + _UTF8,
    ".csv": "text/csv" + _UTF8,
    ".md": "text/markdown" + _UTF8,
    ".xml": "application/xml",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".ico": "image/vnd.microsoft.icon",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".ttf": "font/ttf",
    ".otf": "font/otf",
    ".wasm": "application/wasm",
    ".pdf": "application/pdf",
    ".zip": "application/zip",
    ".mp4": "video/mp4",
    ".webm": "video/webm",
    ".mp3": "audio/mpeg",
    ".ogg": "audio/ogg",
    ".wav": "audio/wav",
}
_HEX = frozenset(string.hexdigits.lower())
_BASE64URL = frozenset(string.ascii_letters + string.digits + "-_")


def content_type(name: str) -> bytes:
    """The Content-Type of a file called ``name``."""
    extension = os.path.splitext(name)[1].lower()
    known = TYPES.get(extension)
    if known is None:
        guessed, _ = mimetypes.guess_type(name, strict=False)
        known = guessed or "application/octet-stream"
        if known.startswith("text/"):
            known += _UTF8
    return known.encode("ascii")


def etag(mtime_ns: int, size: int, coding: bytes = b"") -> bytes:
    """A strong ETag for the file as it is now (and for one of its precompressed copies)."""
    suffix = b"-" + coding if coding else b""
    return b'"%x-%x%s"' % (mtime_ns, size, suffix)


def is_hashed(name: str) -> bool:
    """Whether a file name carries a content hash: a last ``.`` or ``-`` separated part before
    the extension of 8 to 32 hex digits (Django, webpack), or of 8 base64url characters with a
    digit and an upper-case letter (Vite), mixing letters and digits so that a word is never
    taken for one (``bootstrap-dropdown.js`` is not hashed)."""
    stem = os.path.splitext(name)[0]
    cut = max(stem.rfind("."), stem.rfind("-"))
    if cut < 1:
        return False
    token = stem[cut + 1 :]
    has_digit = any(ch.isdigit() for ch in token)
    if not has_digit or not any(ch.isalpha() for ch in token):
        return False
    if 8 <= len(token) <= 32 and set(token) <= _HEX:
        return True
    return len(token) == 8 and set(token) <= _BASE64URL and any(ch.isupper() for ch in token)


def cache_control(name: str, default: bytes) -> Optional[bytes]:
    """The Cache-Control to send for ``name`` (None: none)."""
    if is_hashed(name):
        return IMMUTABLE
    return default or None


def acceptable_codings(accept_encoding: Optional[bytes]) -> List[bytes]:
    """The precompressed codings the client takes, best first (RFC 9110 §12.5.3)."""
    if not accept_encoding:
        return []
    weights: Dict[bytes, float] = {}
    for part in accept_encoding.lower().split(b","):
        coding, _, params = part.strip().partition(b";")
        weight = 1.0
        for param in params.split(b";"):
            key, _, value = param.strip().partition(b"=")
            if key == b"q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        if coding:
            weights[coding.strip()] = weight
    star = weights.get(b"*", 0.0)
    ranked = []
    for order, (coding, _) in enumerate(CODINGS):
        weight = weights.get(coding, star)
        if coding == b"gzip" and b"gzip" not in weights:
            weight = weights.get(b"x-gzip", weight)
        if weight > 0:
            ranked.append((-weight, order, coding))
    return [coding for _, _, coding in sorted(ranked)]


class Representation(NamedTuple):
    """A file as served: its validators and the fields every response about it carries."""

    tag: bytes  # the strong ETag
    modified: int  # Last-Modified, in whole seconds
    headers: Tuple[Tuple[bytes, bytes], ...]  # Content-Type first, Accept-Ranges second


# Representations made lately, by file, size, modification time, coding, Vary and the
# Cache-Control default. Bounded: emptied when full (what is served often is back at once).
_REPRESENTATIONS: Dict[Tuple[str, int, int, bytes, bool, bytes], Representation] = {}
_REPRESENTATIONS_MAX = 4096


def represent(name: str, size: int, mtime_ns: int, coding: bytes, vary: bool, default: bytes) -> Representation:
    """What the file ``name`` (the path asked for; ``coding`` says which copy is sent) is served
    as; ``vary`` when precompressed copies exist, ``default`` the Cache-Control of unhashed names."""
    key = (name, size, mtime_ns, coding, vary, default)
    found = _REPRESENTATIONS.get(key)
    if found is not None:
        return found
    modified = mtime_ns // 1_000_000_000
    tag = etag(mtime_ns, size, coding)
    headers = [
        (b"Content-Type", content_type(name)),
        (b"Accept-Ranges", b"bytes"),
        (b"Last-Modified", http_date(modified)),
        (b"ETag", tag),
    ]
    policy = cache_control(os.path.basename(name), default)
    if policy is not None:
        headers.append((b"Cache-Control", policy))
    if vary:
        headers.append((b"Vary", b"Accept-Encoding"))
    if coding:
        headers.append((b"Content-Encoding", coding))
    found = Representation(tag, modified, tuple(headers))
    if len(_REPRESENTATIONS) >= _REPRESENTATIONS_MAX:
        _REPRESENTATIONS.clear()
    _REPRESENTATIONS[key] = found
    return found
