from importlib.util import find_spec

from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "integrations"
    verbose_name = "Integrations"

    def ready(self) -> None:
        from integrations import redaction

        redaction.install()
        if find_spec("integrations.sync.receivers"):
            import integrations.sync.receivers  # noqa: F401
