"""Progress of one request body, for ``--body-timeout`` and ``--body-min-rate``. [loop]

The protocol records arrivals and the spans in which it did not read (the app was slow, no
thread was free, the body was not yet invited with 100 Continue); a client is only held to
account for the time we were asking it for bytes. The protocol checks ``fault`` when its lazy
BODY deadline comes, every ``CHECK_SECONDS`` at most, so arrivals cost one store each.
"""

from __future__ import annotations

from typing import Optional

# --body-min-rate is checked this often, and only after this much time reading the body.
CHECK_SECONDS = 1.0
MIN_RATE_GRACE_SECONDS = 5.0


class BodyMeter:
    """Bytes and times of one request body; made when a request with a body is parsed."""

    __slots__ = ("last_read", "length", "paused_at", "paused_total", "received", "started")

    def __init__(self, now: float, length: Optional[int]) -> None:
        self.length = length  # the Content-Length, if the request has one
        self.received = 0
        self.started = now
        self.last_read = now
        self.paused_total = 0.0
        self.paused_at = now  # a pause already in effect counts from here

    def paused(self, now: float) -> None:
        """We stopped reading (for any reason)."""
        self.paused_at = now

    def resumed(self, now: float) -> None:
        """We read again: the paused span is not the client's, and the idle clock restarts."""
        self.paused_total += now - self.paused_at
        self.last_read = now

    def unread(self) -> Optional[int]:
        """Declared bytes still to come (None for a chunked body)."""
        return None if self.length is None else self.length - self.received

    def fault(self, now: float, body_timeout: float, min_rate: float) -> Optional[str]:
        """Why the client is too slow, or None while it keeps up."""
        idle = now - self.last_read
        if body_timeout and idle >= body_timeout:
            return f"no request body bytes for {idle:.1f}s (--body-timeout)"
        if min_rate:
            active = now - self.started - self.paused_total
            if active >= MIN_RATE_GRACE_SECONDS and self.received / active < min_rate:
                return f"request body at {self.received / active:.0f} B/s is under --body-min-rate"
        return None


def check_interval(body_timeout: float, min_rate: float) -> float:
    """How far ahead the BODY deadline is set: the timeout, or sooner to check the rate."""
    if min_rate:
        return min(body_timeout, CHECK_SECONDS) if body_timeout else CHECK_SECONDS
    return body_timeout
