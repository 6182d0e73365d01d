"""One server on one asyncio loop. [loop]

``server`` (the embed API), ``listener`` and ``tls`` accept connections; ``connection/`` serves
each one's bytes and phases; ``dispatch`` picks the request cycle (``cycle/``) for each accepted
head; ``context`` is what they all share; ``stats``, ``probes``, ``access`` and ``slowlog`` count,
answer, log and look at what happens; ``deadlines`` and ``gonewatch`` keep the timers and watches
that many connections share.
"""
