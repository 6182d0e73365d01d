"""A small Django project in one module: settings here, no database."""

from __future__ import annotations

import json

import django
from django.conf import settings

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="test-only-not-secret",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        MIDDLEWARE=["django.middleware.common.CommonMiddleware"],
        INSTALLED_APPS=[],
        DATABASES={},
        USE_TZ=True,
    )
    django.setup()

from django.core.wsgi import get_wsgi_application
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt


def hello(request, name):
    return HttpResponse(f"hello {name}")


@csrf_exempt
def json_echo(request):
    data = json.loads(request.body)
    return JsonResponse({"received": data, "count": len(data["items"])})


@csrf_exempt
def upload(request):
    f = request.FILES["file"]
    content = f.read()
    return JsonResponse(
        {"name": f.name, "size": len(content), "field": request.POST["note"], "head": content[:5].decode()}
    )


def stream(request):
    return StreamingHttpResponse((f"part{i};" for i in range(5)), content_type="text/plain")


urlpatterns = [
    path("hello/<str:name>", hello),
    path("json", json_echo),
    path("upload", upload),
    path("stream", stream),
]

app = get_wsgi_application()
