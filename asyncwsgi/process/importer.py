"""Turn an app spec such as ``"pkg.mod:attr.sub"`` into a WSGI callable, and ``--mount`` specs
into ASGI apps. [main: at startup]

Also the stand-in app a ``--reload`` worker serves when that fails.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from typing import Any, Dict, Optional, Sequence

from ..asgi.mounts import is_asgi3, parse_spec
from ..errors import AppImportError
from ..types import WSGIApp


def import_app(spec: str, *, factory: bool = False, app_dir: Optional[str] = ".") -> WSGIApp:
    """Import ``module:attribute`` (attribute may be dotted); with ``factory``, call it for the app.

    ``app_dir`` is put first on ``sys.path`` so that ``asyncwsgi app:application`` finds ``app.py``
    in the current directory, as users expect from gunicorn and uvicorn.
    """
    module_name, sep, attr_path = spec.partition(":")
    if not sep or not module_name or not attr_path:
        raise AppImportError(f"app must be given as 'module:attribute', got {spec!r}")
    if app_dir is not None:
        path = os.path.abspath(app_dir)
        if path not in sys.path:
            sys.path.insert(0, path)
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise AppImportError(f"could not import module {module_name!r}: {exc}") from None
        raise AppImportError(f"error while importing {module_name!r}: {exc!r}") from exc
    except Exception as exc:
        raise AppImportError(f"error while importing {module_name!r}: {exc!r}") from exc
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise AppImportError(f"{module_name!r} has no attribute {attr_path!r}") from None
    if factory:
        if not callable(obj):
            raise AppImportError(f"--factory given but {spec!r} is not callable")
        try:
            obj = obj()
        except Exception as exc:
            raise AppImportError(f"app factory {spec!r} raised {exc!r}") from exc
    if not callable(obj):
        raise AppImportError(f"{spec!r} is not a callable WSGI application (got {type(obj).__name__})")
    return obj  # type: ignore[no-any-return,unused-ignore]


def import_mounts(specs: Sequence[str], *, factory: bool = False, app_dir: Optional[str] = ".") -> Dict[str, Any]:
    """``--mount PREFIX=module:attr`` specs -> {prefix: ASGI app}; AppImportError names the bad one.

    With ``factory``, a target that is not an ASGI 3 app yet is called with no arguments for it.
    """
    mounts: Dict[str, Any] = {}
    for spec in specs:
        prefix, target = parse_spec(spec)
        app: Any = import_app(target, app_dir=app_dir)
        if factory and not is_asgi3(app):
            try:
                app = app()
            except Exception as exc:
                raise AppImportError(f"--mount {prefix}: app factory {target!r} raised {exc!r}") from exc
        if not is_asgi3(app):
            raise AppImportError(
                f"--mount {prefix}: {target!r} is not an ASGI 3 application "
                "(an async callable taking scope, receive and send)"
            )
        mounts[prefix] = app
    return mounts


def import_failure_app(error: AppImportError) -> WSGIApp:
    """``--reload`` only: an app that answers every request with why the real one did not import.

    In development a browser refresh then shows the traceback at once, instead of waiting in the
    backlog for a fix. Never used without ``--reload``: tracebacks are not for the public.
    """
    lines = [f"asyncwsgi --reload: {error}", "Fix the code and save; the server restarts by itself.", ""]
    if error.__cause__ is not None:
        lines += traceback.format_exception(type(error.__cause__), error.__cause__, error.__cause__.__traceback__)
    body = "\n".join(lines).encode("utf-8", "replace")

    def app(environ: Any, start_response: Any) -> Any:  # [worker thread]
        start_response(
            "500 Internal Server Error",
            [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))],
        )
        return [body]

    return app
