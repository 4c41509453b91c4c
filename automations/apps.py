from django.apps import AppConfig


class AutomationsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "automations"
    verbose_name = "Automations"

    def ready(self) -> None:
        import automations.receivers  # noqa: F401  (connects the signal receivers)
