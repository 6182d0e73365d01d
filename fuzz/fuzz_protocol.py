"""Coverage-guided fuzzing of the protocol layer with atheris, for runs longer than CI's.

    pip install atheris
    mkdir -p /tmp/corpus
    python fuzz/fuzz_protocol.py /tmp/corpus fuzz/corpus -max_total_time=600   # libFuzzer flags work
    python fuzz/fuzz_protocol.py crash-<hash>                                  # replay a finding

New inputs go to the first corpus folder; fuzz/corpus holds the seeds. The first run found a
real bug in seconds (test_garbage_after_a_complete_bodiless_request is its regression test).

Each input is split into reads at the positions its first bytes choose, fed to a real
HTTPProtocol (real loop, real worker pool, fake socket; see tests/harness.py), then EOF.
A finding is any exception out of the protocol, an error logged by the loop, a leaked worker
slot or connection, or output that does not parse as HTTP responses.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import atheris

with atheris.instrument_imports():
    import h11  # noqa: F401

    import asyncwsgi.server.connection.protocol  # noqa: F401
    from tests.harness import parse_all, run, split


def one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    cuts = list(data[:4])
    payload = data[4:]
    out, closed, errors = run(split(payload, cuts), eof=True, done=lambda _: False)
    if errors:
        raise AssertionError(f"loop errors: {errors}")
    if not closed:
        raise AssertionError("connection not closed after EOF")
    for response in parse_all(out):
        if not (response.status == 100 or 200 <= response.status < 600):
            raise AssertionError(f"bad status {response.status}")


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
