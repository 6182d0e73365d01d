"""Exception classes shared by the loop and thread sides. [any]"""

from __future__ import annotations


class ConfigError(ValueError):
    """An option has a bad value or conflicts with another; the message names the flag."""


class AppImportError(Exception):
    """The ``module:attribute`` app spec could not be turned into a WSGI callable."""


class LoopUnavailable(ConfigError):
    """The requested event loop implementation is not installed."""


class ClientDisconnected(ConnectionError):
    """The client went away: raised in the thread by ``wsgi.input`` reads and response writes.

    It subclasses ``ConnectionError`` (an ``OSError``) so that apps which already handle
    I/O errors on their streams handle this one too.
    """


class RequestBodyError(ValueError):
    """The request body cannot be read to its end; raised by ``wsgi.input``.

    When the app lets it escape before sending headers, the client is answered ``status``, and the
    connection is closed after the response.
    """

    status = 400


class RequestBodyTooLarge(RequestBodyError):
    """A chunked body went over ``--max-body-bytes``."""

    status = 413


class RequestBodyTimeout(RequestBodyError):
    """The client stopped sending its body (``--body-timeout``) or sent it too slowly (``--body-min-rate``)."""

    status = 408


class RequestTrailersTooLarge(RequestBodyError):
    """The chunked body's trailer fields went over the header limits."""

    status = 431


class RequestTimeout(Exception):
    """Raised in the app's thread at ``--request-timeout`` with ``--interrupt-on-timeout``.

    It arrives at the thread's next Python function call or loop iteration: a pure-Python loop
    stops at once, a blocking call (``time.sleep``, a socket read, C code) only when it returns.
    The client has already been answered ``504``; let it propagate (a broad ``except
    Exception`` swallows it, and the app then runs on as without the option).
    """


class ProxyProtocolError(ValueError):
    """A trusted peer's PROXY protocol header is missing or malformed; the connection is refused."""


class StartupFailed(Exception):
    """A mounted ASGI app refused to start (``lifespan.startup.failed``, or raised after taking
    part in the lifespan protocol); the server does not start."""
