"""Django views in one module, settings here, no database: a JSON view, and a templated page of
50 rows behind 2 ms of simulated database time (``/page``, benchmarks/page_data.py)."""

from pathlib import Path

import django
from django.conf import settings

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="benchmark-only",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        MIDDLEWARE=["django.middleware.common.CommonMiddleware"],
        INSTALLED_APPS=[],
        DATABASES={},
        TEMPLATES=[
            {
                "BACKEND": "django.template.backends.django.DjangoTemplates",
                "DIRS": [str(Path(__file__).parent / "templates")],
                # The cached loader is what production runs (Django's default when DEBUG is off).
            }
        ],
    )
    django.setup()

from django.core.wsgi import get_wsgi_application
from django.http import JsonResponse
from django.shortcuts import render
from django.urls import path

from benchmarks.page_data import context


def index(request):
    return JsonResponse({"message": "Hello, world!", "items": list(range(10))})


def page(request):
    return render(request, "page.html", context())


urlpatterns = [path("", index), path("page", page)]
app = get_wsgi_application()
