from django.contrib import admin
from django.urls import path, re_path

from realtime import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", views.index, name="index"),
    # daphne serves no static files: the app serves /static/ itself (see views.static_file).
    re_path(r"^static/(?P<path>.+)$", views.static_file, name="static"),
]
