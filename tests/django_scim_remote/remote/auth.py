"""Authenticates requests that carry the configured bearer token."""
import hmac
import os
from types import SimpleNamespace

from django.contrib.auth.models import AnonymousUser


class BearerTokenMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self.token = os.environ["SCIM_REMOTE_TOKEN"]

    def __call__(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        given = header[7:] if header.lower().startswith("bearer ") else ""
        if given and hmac.compare_digest(given, self.token):
            request.user = SimpleNamespace(is_authenticated=True)
        else:
            request.user = AnonymousUser()
        return self.get_response(request)
