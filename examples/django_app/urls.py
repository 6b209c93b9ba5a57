"""The example's routes; /login, /callback, /silent and /logout belong to the middleware."""

from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path("", views.home),
    path("api/me", views.me),
]
