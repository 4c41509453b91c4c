from importlib.util import find_spec

from django.apps import AppConfig


class AutomationsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "automations"
    verbose_name = "Automations"

    def ready(self) -> None:
        if find_spec("automations.receivers"):
            import automations.receivers  # noqa: F401
