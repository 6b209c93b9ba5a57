"""The example project over ASGI, configured only from ``RENEWAL_*`` variables.

    RENEWAL_ISSUER=... RENEWAL_CLIENT_ID=... RENEWAL_CLIENT_SECRET=... \
    RENEWAL_SECRET_KEYS=... RENEWAL_BASE_URL=http://127.0.0.1:8000 \
    uvicorn examples.django_app.asgi:application --host 127.0.0.1 --port 8000
"""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

from renewal_middleware import RenewalMiddleware

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_app.settings")

application = RenewalMiddleware(get_asgi_application())
