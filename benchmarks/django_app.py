"""A Django JSON view in one module: settings here, no database."""

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
    )
    django.setup()

from django.core.wsgi import get_wsgi_application
from django.http import JsonResponse
from django.urls import path


def index(request):
    return JsonResponse({"message": "Hello, world!", "items": list(range(10))})


urlpatterns = [path("", index)]
app = get_wsgi_application()
