"""TLS: the server's ssl.SSLContext, built once from the Config. [any]

Certificates are read when the server starts, so a missing file or a wrong password is a
one-line configuration error before anything listens. Handshakes run on the event loop under
``--header-timeout`` (a client that never finishes one costs a deadline, not a thread); one
that fails costs only a debug log line.
"""

from __future__ import annotations

import ssl
from typing import Optional

from ..config import Config
from ..errors import ConfigError

_VERIFY_MODES = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}


def make_ssl_context(config: Config) -> Optional[ssl.SSLContext]:
    """The server-side context, or None when TLS is off (no ``--certfile``)."""
    if config.certfile is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION
    try:
        context.load_cert_chain(config.certfile, config.keyfile, config.keyfile_password)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"--certfile/--keyfile cannot be loaded: {_reason(exc)}") from None
    if config.ca_certs is not None:
        try:
            context.load_verify_locations(cafile=config.ca_certs)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"--ca-certs cannot be loaded: {_reason(exc)}") from None
    context.verify_mode = _VERIFY_MODES[config.cert_reqs]
    if config.ciphers:
        try:
            context.set_ciphers(config.ciphers)
        except ssl.SSLError:
            raise ConfigError(f"--ciphers selects no cipher: {config.ciphers!r}") from None
    context.set_alpn_protocols(["http/1.1"])  # we speak HTTP/1.1 only; never negotiate h2
    return context


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}" + (f": {exc.filename}" if exc.filename else "")
    return str(exc)
