"""One client connection: bytes in, phases and deadlines, flow control, refusals, bytes out. [loop]

Built in layers, each a base class so that an idle connection is one object (``benchmarks/idle.py``
holds it near 2.4 KB): ``flow`` < ``wireinput`` < ``bodyinput`` < ``protocol``. It serves one
request cycle at a time (``server/cycle``), through the seam (``server/seam.py``) and nothing else.
"""
