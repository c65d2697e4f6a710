"""Credentials a request presents: read by the ticket view (to authenticate) and by the
failed-login throttle (to count) alike, so neither imports the other."""

from __future__ import annotations

import base64
import binascii

from django.http import HttpRequest


def basic_credentials(request: HttpRequest) -> tuple[str, str] | None:
    header = request.headers.get("Authorization", "")
    if not header.lower().startswith("basic "):
        return None
    try:
        username, _, password = base64.b64decode(header[6:]).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return username, password
