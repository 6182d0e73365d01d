"""Unit tests for request body progress (asyncwsgi/server/bodyrate.py): no clock, no server."""

from __future__ import annotations

from asyncwsgi.server.connection import bodyrate
from asyncwsgi.server.connection.bodyrate import BodyMeter, check_interval


def test_idle_client_times_out_after_body_timeout():
    meter = BodyMeter(100.0, 1000)
    meter.received, meter.last_read = 10, 101.0
    assert meter.fault(105.9, body_timeout=5.0, min_rate=0) is None
    problem = meter.fault(106.0, body_timeout=5.0, min_rate=0)
    assert problem is not None and "--body-timeout" in problem and "5.0s" in problem


def test_min_rate_is_checked_only_after_the_grace():
    meter = BodyMeter(0.0, None)
    meter.received = 10  # 10 bytes in the whole time: far under 1 KiB/s
    meter.last_read = 4.9
    assert meter.fault(bodyrate.MIN_RATE_GRACE_SECONDS - 0.1, body_timeout=0, min_rate=1024) is None
    problem = meter.fault(bodyrate.MIN_RATE_GRACE_SECONDS, body_timeout=0, min_rate=1024)
    assert problem is not None and "--body-min-rate" in problem and "2 B/s" in problem


def test_time_we_did_not_read_is_not_held_against_the_client():
    meter = BodyMeter(0.0, None)
    meter.received = 6000
    meter.paused(1.0)
    meter.resumed(9.0)  # eight seconds we did not ask for bytes (the app was busy)
    assert meter.last_read == 9.0  # the idle clock restarts when we read again
    # 10 s since the start, 2 s of them reading: 3000 B/s, over the minimum.
    assert meter.fault(10.0, body_timeout=0, min_rate=2048) is None
    # Without the pause it would be 600 B/s: the same bytes over the whole time fail.
    plain = BodyMeter(0.0, None)
    plain.received = 6000
    assert plain.fault(10.0, body_timeout=0, min_rate=2048) is not None


def test_a_pause_in_effect_when_the_body_starts_counts_from_its_start():
    meter = BodyMeter(50.0, None)
    meter.resumed(52.0)  # reading was paused (for a thread) before the meter existed
    assert meter.paused_total == 2.0  # not 52 s: the span starts at the meter's creation


def test_unread_is_what_the_content_length_still_promises():
    meter = BodyMeter(0.0, 100)
    meter.received = 40
    assert meter.unread() == 60
    assert BodyMeter(0.0, None).unread() is None


def test_check_interval_is_the_timeout_or_sooner_to_check_the_rate():
    assert check_interval(30.0, 0) == 30.0
    assert check_interval(0, 0) == 0
    assert check_interval(30.0, 1024) == bodyrate.CHECK_SECONDS
    assert check_interval(0.5, 1024) == 0.5
    assert check_interval(0, 1024) == bodyrate.CHECK_SECONDS
