"""Budgets in the admin: a staff override per user, and what is left of it today.

``UserBudget`` rows are edited by staff with the change permission (superusers have it); the
user's page gets the same form inline. "Left today" is computed as admission computes it
(``realtime.guards.budgets.budget_for``): the deployment's settings with the override applied,
minus today's sessions on every worker.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.http import HttpRequest
from django.utils import timezone

from realtime.guards import budgets
from realtime.models import UserBudget
from realtime.ops import runtime as relay_runtime


def left_today(user_id: int | None) -> str:
    if user_id is None:
        return "—"
    budget = budgets.budget_for(relay_runtime.current().config, user_id, timezone.now())
    parts = []
    for left, total, unit in (
        (budget.seconds_left, budget.limits.daily_seconds, "s"),
        (budget.tokens_left, budget.limits.daily_tokens, "tokens"),
    ):
        parts.append(f"{left} of {total} {unit}" if total else f"no {unit} limit")
    per_minute = budget.limits.connects_per_minute
    parts.append(f"{per_minute} connects/min" if per_minute else "no connect limit")
    return "; ".join(parts)


@admin.register(UserBudget)
class UserBudgetAdmin(admin.ModelAdmin):
    list_display = (
        "user",
        "connects_per_minute",
        "daily_seconds",
        "daily_tokens",
        "remaining",
        "changed_by",
        "changed_at",
    )
    search_fields = ("user__username", "note")
    list_select_related = ("user",)
    autocomplete_fields = ("user",)
    readonly_fields = ("remaining", "changed_by", "changed_at")

    @admin.display(description="left today")
    def remaining(self, obj: UserBudget) -> str:
        return left_today(obj.user_id)

    def save_model(self, request: HttpRequest, obj: UserBudget, form: Any, change: bool) -> None:
        obj.changed_by = request.user.get_username()[:150]
        super().save_model(request, obj, form, change)


class UserBudgetInline(admin.StackedInline):
    model = UserBudget
    can_delete = True
    extra = 0
    max_num = 1
    fields = ("connects_per_minute", "daily_seconds", "daily_tokens", "note", "remaining")
    readonly_fields = ("remaining",)
    verbose_name_plural = "realtime budget (override)"

    @admin.display(description="left today")
    def remaining(self, obj: UserBudget | None) -> str:
        return left_today(obj.user_id if obj is not None and obj.pk else None)


User = get_user_model()
if admin.site.is_registered(User):
    base = type(admin.site.get_model_admin(User))  # Django ≥ 5.0
    admin.site.unregister(User)
else:
    base = UserAdmin


@admin.register(User)
class UserWithBudgetAdmin(base):  # type: ignore[valid-type, misc]
    inlines = (*getattr(base, "inlines", ()), UserBudgetInline)
    readonly_fields = (*getattr(base, "readonly_fields", ()), "budget_left_today")

    @admin.display(description="realtime budget left today")
    def budget_left_today(self, obj: Any) -> str:
        return left_today(obj.pk if obj is not None and obj.pk else None)

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets = list(super().get_fieldsets(request, obj))
        if obj is not None:
            fieldsets.append(("Realtime relay", {"fields": ("budget_left_today",)}))
        return fieldsets
