"""permessage-deflate offers from a WebSocket client, checked as RFC 7692 §7.1 asks. [loop]

Pure. wsproto parses the parameters of an offer leniently and then trusts them: a parameter it
does not know is ignored (§7.1 says the offer must be declined), a quoted value (valid per RFC 6455
§9.1) or a value that is not a number raises ValueError out of its handshake, which reached the
app's ``websocket.accept`` as a 500. ``checked_offer`` reads one offer strictly and returns it in
the plain form wsproto handles, or None: the server declines that offer and the handshake goes
on without it.

The parameters (§7.1.1, §7.1.2) and what the server makes of them:

    server_no_context_takeover   no value; we compress each message afresh
    client_no_context_takeover   no value; the client may do the same
    server_max_window_bits       a value, 8 to 15 without leading zeros; we compress with that
                                 window (8 is declined: zlib makes no raw deflate stream with a
                                 256-byte window)
    client_max_window_bits       no value, or 8 to 15: a hint we may ignore (§7.1.2.2), and do,
                                 as we inflate with the largest window, which reads every stream

Anything else, a parameter twice, or a value where none belongs, declines the offer.
"""

from __future__ import annotations

import re
from typing import Dict, Optional

from .grammar import TOKEN

NAME = "permessage-deflate"

# RFC 6455 §9.1: extension-param = token [ "=" (token | quoted-string) ]; a quoted value must
# itself be a token once unquoted. The window values (§7.1.2): 8 to 15, no leading zero.
_PARAM = re.compile(rf"""\s*({TOKEN})\s*(?:=\s*(?:({TOKEN})|"({TOKEN})"))?\s*\Z""")
_WINDOW = re.compile(r"(?:[89]|1[0-5])\Z")
_FLAGS = ("server_no_context_takeover", "client_no_context_takeover")
_SMALLEST_ZLIB_WINDOW = 9


def checked_offer(offer: str) -> Optional[str]:
    """``offer`` (one element of Sec-WebSocket-Extensions) as wsproto should read it, or None to
    decline it. An offer of another extension is None too."""
    name, *parts = offer.split(";")
    if name.strip().lower() != NAME:
        return None
    params: Dict[str, Optional[str]] = {}
    for part in parts:
        match = _PARAM.match(part)
        if match is None:
            return None
        key = match.group(1).lower()
        value = match.group(2) if match.group(2) is not None else match.group(3)
        if key in params:
            return None  # a parameter twice (§7.1)
        params[key] = value
    plain = [NAME]
    for key, value in params.items():
        if key in _FLAGS:
            if value is not None:
                return None
            plain.append(key)
        elif key == "server_max_window_bits":
            if value is None or _WINDOW.match(value) is None or int(value) < _SMALLEST_ZLIB_WINDOW:
                return None
            plain.append(f"{key}={value}")
        elif key == "client_max_window_bits":
            if value is not None and _WINDOW.match(value) is None:
                return None
            # Left out: wsproto would answer with its own window, which may be larger than the
            # value offered (§7.1.2.2 allows only the same or smaller). Unanswered, it leaves the
            # client free to use any window, and we inflate with the largest, which reads all.
        else:
            return None  # a parameter we do not know (§7.1)
    return "; ".join(plain)
