"""RFC 9110 grammar shared by the request checks, the response checks and the configuration.
[any: constants only]"""

from __future__ import annotations

# RFC 9110 section 5.6.2: token = 1*tchar, the grammar of field names, methods and chunk
# extension names. A pattern to compose into larger ones (each user compiles its own anchors).
TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
TOKEN_BYTES = TOKEN.encode("ascii")
