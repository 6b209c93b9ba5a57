"""Settings of the example project: one app-less URLconf, no database, no Django auth.

The middleware itself is configured from the ``RENEWAL_*`` variables (see asgi.py/wsgi.py).
"""

from __future__ import annotations

# Fixed for the example only: Django signs nothing here (no sessions, no CSRF forms; the
# middleware signs its cookies with RENEWAL_SECRET_KEYS). Read it from the environment in
# a real project.
SECRET_KEY = "django-example-only-not-secret-0123456789abcdefghijklmnopqrstuvwxyz"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

ROOT_URLCONF = "examples.django_app.urls"
INSTALLED_APPS: list[str] = []
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # request.oidc_user (and request.user, with RENEWAL_SET_REQUEST_USER = True)
    "renewal_middleware.integrations.django.RenewalUserMiddleware",
]
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True
