"""Loggers, and escaping for what clients control. [any]

The access-log line itself is built in accesslog.py.

The library only ever logs to these named loggers; configuring handlers is the CLI's job
(or the embedding program's), so embedding asyncwsgi never touches global logging setup.
"""

from __future__ import annotations

import logging

error_log = logging.getLogger("asyncwsgi.error")
access_log = logging.getLogger("asyncwsgi.access")

# C0 controls, DEL and the C1 controls (0x9b is CSI on 8-bit terminals): all client-reachable
# through header values, which h11 passes through as latin-1.
_ESCAPES = {i: f"\\x{i:02x}" for i in [*range(0x20), *range(0x7F, 0xA0)]}
_ESCAPES[ord('"')] = '\\"'
_ESCAPES[ord("\\")] = "\\\\"


def escape(text: str) -> str:
    """Make client-controlled text safe for a log line: no control bytes or terminal escapes."""
    if text.isprintable() and '"' not in text and "\\" not in text:
        return text
    return text.translate(_ESCAPES)
