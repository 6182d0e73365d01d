"""One server on one asyncio loop: the embed API, the connection's life (protocol, exchange,
deadlines), the accept loop, TLS, counters and the probes the loop answers itself. [loop]"""
