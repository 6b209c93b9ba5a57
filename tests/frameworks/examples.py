"""The runnable example of each supported framework, and how to serve it.

``{port}`` in a command is the port to listen on. Each example reads only the
``RENEWAL_*`` variables and serves ``GET /`` (HTML) and ``GET /api/me`` (JSON
``{"sub", "expires_at"}``, 401 JSON when anonymous).
"""

from __future__ import annotations

import sys

UVICORN = [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", "{port}",
           "--no-access-log"]
WAITRESS = [sys.executable, "-m", "waitress", "--host", "127.0.0.1", "--port", "{port}",
            "--threads", "8"]

#: example name -> the framework package it needs
FRAMEWORK = {
    "starlette": "starlette", "fastapi": "fastapi", "litestar": "litestar", "quart": "quart",
    "django-asgi": "django", "django-wsgi": "django", "flask": "flask",
}

#: example name -> command serving it
EXAMPLES: dict[str, list[str]] = {
    "starlette": [*UVICORN, "examples.starlette_app:app"],
    "fastapi": [*UVICORN, "examples.fastapi_app:app"],
    "litestar": [*UVICORN, "examples.litestar_app:app"],
    "quart": [*UVICORN, "examples.quart_app:app"],
    "django-asgi": [*UVICORN, "examples.django_app.asgi:application"],
    "django-wsgi": [*WAITRESS, "examples.django_app.wsgi:application"],
    "flask": [*WAITRESS, "examples.flask_app:app"],
}
