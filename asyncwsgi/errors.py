"""Exception classes shared by the loop and worker sides. [both]"""

from __future__ import annotations


class ConfigError(ValueError):
    """An option has a bad value or conflicts with another; the message names the flag."""


class AppImportError(Exception):
    """The ``module:attribute`` app spec could not be turned into a WSGI callable."""


class LoopUnavailable(ConfigError):
    """The requested event loop implementation is not installed."""


class ClientDisconnected(ConnectionError):
    """The client went away: raised in the worker by ``wsgi.input`` reads and response writes.

    It subclasses ``ConnectionError`` (an ``OSError``) so that apps which already handle
    I/O errors on their streams handle this one too.
    """


class RequestBodyError(ValueError):
    """The request body was malformed (bad chunked framing, truncated); raised by ``wsgi.input``.

    When the app lets it escape before sending headers, the client is answered 400.
    """
