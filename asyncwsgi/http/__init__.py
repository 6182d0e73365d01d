"""Pure HTTP/1.1: response bytes and framing, the strict byte checks, the direct body path, the
PROXY header and --bind addresses. No socket, event loop, thread or clock here (h11's rule one):
every module is a function of its input, tested by tables of cases. [loop]"""
