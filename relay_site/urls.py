from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path, re_path

from realtime.admin import usage as usage_admin
from realtime.edge import pages as views
from realtime.edge import tickets as api
from realtime.edge import twilio_voice as phone
from realtime.ops import health, metrics
from realtime.records import views as conversation_views

urlpatterns = [
    path("admin/usage/", admin.site.admin_view(usage_admin.usage_view), name="usage_summary"),
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(next_page="/"), name="logout"),
    path("api/realtime/ticket", api.ticket, name="realtime_ticket"),
    path("twilio/voice", phone.voice, name="twilio_voice"),  # the phone edge (docs/phone.md)
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("", views.index, name="index"),
    path("conversations/", conversation_views.conversation_list, name="conversations"),
    path(
        "conversations/all.json",
        conversation_views.conversations_export,
        name="conversations_export",
    ),
    path(
        "conversations/<uuid:session_id>",
        conversation_views.conversation_detail,
        name="conversation",
    ),
    path(
        "conversations/<uuid:session_id>.json",
        conversation_views.conversation_export,
        name="conversation_export",
    ),
    # daphne serves no static files: the app serves /static/ itself (see views.static_file).
    re_path(r"^static/(?P<path>.+)$", views.static_file, name="static"),
]
