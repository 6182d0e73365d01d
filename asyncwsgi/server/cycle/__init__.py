"""Request cycles: one request (or a WebSocket) from its accepted head to its end. [loop]

``server/seam.py`` declares what a cycle and its connection may ask of each other; nothing here
imports the connection's modules. ``wsgi`` (the WSGI app on the pool, with ``waiting`` and ``deadline`` made
only when needed), ``asgi`` and ``websocket`` (mounted ASGI apps, with ``wsstream`` for open
WebSockets), ``probe`` (answers the loop gives itself); ``writer`` frames their responses.
"""
