"""A Django site in one module, with its admin, served by asyncwsgi with its static files from the
event loop (``--static``), the way a project does after ``collectstatic``::

    python -m examples.django_site collectstatic --noinput
    asyncwsgi examples.django_site:app --static /static=examples/staticfiles

Then http://127.0.0.1:8000/admin/login/ is the admin's login page, styled: its CSS and JavaScript
come from ``examples/staticfiles`` (``STATIC_ROOT``), with immutable caching for the hashed names
``ManifestStaticFilesStorage`` writes. No database is needed to see it (sessions live in signed
cookies). ``DJANGO_STATIC_ROOT`` puts the collected files elsewhere.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import django
from django.conf import settings

STATIC_ROOT = Path(os.environ.get("DJANGO_STATIC_ROOT", Path(__file__).with_name("staticfiles")))

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="example-only-not-secret",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=[
            "django.contrib.admin",
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "django.contrib.messages",
            "django.contrib.staticfiles",
        ],
        MIDDLEWARE=[
            "django.middleware.security.SecurityMiddleware",
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.middleware.common.CommonMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            "django.contrib.messages.middleware.MessageMiddleware",
        ],
        TEMPLATES=[
            {
                "BACKEND": "django.template.backends.django.DjangoTemplates",
                "APP_DIRS": True,
                "OPTIONS": {
                    "context_processors": [
                        "django.template.context_processors.request",
                        "django.contrib.auth.context_processors.auth",
                        "django.contrib.messages.context_processors.messages",
                    ]
                },
            }
        ],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        SESSION_ENGINE="django.contrib.sessions.backends.signed_cookies",
        MESSAGE_STORAGE="django.contrib.messages.storage.cookie.CookieStorage",
        STATIC_URL="/static/",
        STATIC_ROOT=STATIC_ROOT,
        STORAGES={
            "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"},
        },
        USE_TZ=True,
    )
    django.setup()

from django.contrib import admin  # noqa: E402  (after the settings)
from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.urls import path  # noqa: E402

urlpatterns = [path("admin/", admin.site.urls)]

app = get_wsgi_application()

if __name__ == "__main__":
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
