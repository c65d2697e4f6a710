"""The Django admin: live sessions, conversations, budgets and usage."""

from realtime.admin import sessions  # noqa: F401 (registers the ModelAdmins)
