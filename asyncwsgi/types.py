"""WSGI type aliases (``wsgiref.types`` exists only from Python 3.11). [any]"""

from __future__ import annotations

from types import TracebackType
from typing import Any, Callable, Dict, Iterable, Optional, Tuple, Type

ExcInfo = Tuple[Type[BaseException], BaseException, Optional[TracebackType]]
WriteCallable = Callable[[bytes], Any]
StartResponse = Callable[..., WriteCallable]
Environ = Dict[str, Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]
