"""Static files the event loop answers itself (``--static PREFIX=DIR``): the mount table, safe
resolution of a path to a file under its directory, and the headers of what is served. [loop]

Above ``http/`` (it uses its grammar) and below ``config`` (which checks the specs); the request
cycle that sends the files is ``server/cycle/static.py``.
"""
