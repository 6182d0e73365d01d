"""asyncwsgi: a WSGI server on an asyncio event loop, with h11 parsing and a bounded thread pool.
[any]

Embed it in an asyncio program::

    server = await asyncwsgi.start_server(app, host="127.0.0.1", port=8000)
    async with server:
        await server.serve_forever()
"""

__version__ = "0.1.0"

from .config import Config
from .errors import (
    AppImportError,
    ClientDisconnected,
    ConfigError,
    RequestBodyError,
    RequestBodyTimeout,
    RequestBodyTooLarge,
    RequestTimeout,
    RequestTrailersTooLarge,
    StartupFailed,
)
from .server.server import Server, serve, start_server

__all__ = [
    "AppImportError",
    "ClientDisconnected",
    "Config",
    "ConfigError",
    "RequestBodyError",
    "RequestBodyTimeout",
    "RequestBodyTooLarge",
    "RequestTimeout",
    "RequestTrailersTooLarge",
    "Server",
    "StartupFailed",
    "__version__",
    "serve",
    "start_server",
]
