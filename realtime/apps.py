from django.apps import AppConfig


class RealtimeConfig(AppConfig):
    name = "realtime"
    verbose_name = "Realtime relay"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from realtime import checks  # noqa: F401 (they register themselves)
        from realtime.guards import throttle  # noqa: F401

        # Framework patches (realtime/compat) are installed where the server is built
        # (relay_site/application.py), not for every manage.py command.
