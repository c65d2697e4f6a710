from django.apps import AppConfig


class RealtimeConfig(AppConfig):
    name = "realtime"
    verbose_name = "Realtime relay"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from realtime import checks, compat  # noqa: F401 (they register themselves)
        from realtime.guards import throttle  # noqa: F401

        compat.install()  # framework patches, once per process (realtime/compat)
