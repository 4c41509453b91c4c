from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "integrations"
    verbose_name = "Integrations"

    def ready(self) -> None:
        from integrations import redaction

        redaction.install()
        import integrations.alerts  # noqa: F401  (connects the alert listeners)
        import integrations.sync.receivers  # noqa: F401  (connects the signal receivers)
