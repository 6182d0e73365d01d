"""The phases of one connection's life, each with its read-side deadline. [loop]

A module of its own so that the table below, which ``HTTPProtocol`` and ``BodyInput`` follow and
``tests/server/test_phases.py`` walks, is read in one place.
"""

from __future__ import annotations

import enum


class Phase(enum.Enum):
    """Where a connection is in its life, and so which read-side deadline applies.

    ========  ==========================================  ======================================
    IDLE      between requests; no parser                 --keep-alive; then closed quietly
    HEAD      the next head is due or arriving            --header-timeout; then 408 (closed
                                                          quietly if nothing came)
    REQUEST   a request is in progress (the app runs)     --body-timeout, --body-min-rate while
                                                          its body is wanted; then the app's
                                                          read fails
    DRAIN     the response is out; the rest of the body   the same body deadline; then closed
              is read and discarded (up to 1 MiB)
    LINGER    refused: half-closed, input discarded       2 s; then closed
    UPGRADED  a WebSocket: the session reads and writes   none here: --ws-ping-interval and
              the connection (server/websocket.py)        --ws-ping-timeout, in the session
    CLOSED    the transport is gone                       none
    ========  ==========================================  ======================================

    A connection starts in HEAD. HEAD -> REQUEST when a head is accepted; IDLE -> HEAD at the
    next request's first byte; REQUEST -> DRAIN when the app answered before reading its whole
    body; REQUEST or DRAIN -> IDLE, or HEAD with a pipelined request, for the next request; any
    phase -> LINGER on a refusal; REQUEST -> UPGRADED when a mounted app accepts a WebSocket;
    and -> CLOSED at the end.
    """

    IDLE = "idle"
    HEAD = "head"
    REQUEST = "request"
    DRAIN = "drain"
    LINGER = "linger"
    UPGRADED = "upgraded"
    CLOSED = "closed"


IDLE, HEAD, REQUEST, DRAIN, LINGER, UPGRADED, CLOSED = Phase
