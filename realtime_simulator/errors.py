"""Errors a client event can cause; the session turns them into `error` events."""

from __future__ import annotations


class ClientError(Exception):
    def __init__(self, code: str | None, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.param = code, message, param


class ConfigError(ClientError):
    """A `session.update` (or per-response setting) the real service would refuse."""
