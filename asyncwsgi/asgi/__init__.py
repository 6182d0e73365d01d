"""What a mounted ASGI application sees: mounts, scopes, messages, lifespan (``--mount``).
[loop]"""
