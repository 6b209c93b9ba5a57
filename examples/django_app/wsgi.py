"""The example project over WSGI, configured only from ``RENEWAL_*`` variables.

    RENEWAL_ISSUER=... RENEWAL_CLIENT_ID=... RENEWAL_CLIENT_SECRET=... \
    RENEWAL_SECRET_KEYS=... RENEWAL_BASE_URL=http://127.0.0.1:8000 \
    python -m waitress --host 127.0.0.1 --port 8000 --threads 8 examples.django_app.wsgi:application
"""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

from renewal_middleware import WSGIRenewalMiddleware

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_app.settings")

application = WSGIRenewalMiddleware(get_wsgi_application())
