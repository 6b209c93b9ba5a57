"""A minimal Django project behind the renewal middleware, served over ASGI or WSGI.

See :mod:`examples.django_app.asgi` and :mod:`examples.django_app.wsgi` for how to run it.
"""
