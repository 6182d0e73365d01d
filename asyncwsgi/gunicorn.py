"""``gunicorn -k asyncwsgi.gunicorn.Worker``: the documented path of the worker class, which
lives in ``process/gunicorn_worker.py``. [main]"""

from .process.gunicorn_worker import Worker

__all__ = ["Worker"]
