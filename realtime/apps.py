from django.apps import AppConfig


class RealtimeConfig(AppConfig):
    name = "realtime"
    verbose_name = "Realtime relay"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from realtime import checks, compat, throttle  # noqa: F401 (they register themselves)

        compat.install()  # framework patches, once per process (realtime/compat)
