"""`manage.py pause INTEGRATION_ID`: the Pause switch of the settings page."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from integrations import services
from integrations.management.cli import integration_or_error, quiet_worker_logs


class Command(BaseCommand):
    help = "Pause an integration: real-time changes are held until it is resumed."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("integration_id", type=int)
        parser.add_argument("--reason", default="Paused from the command line")

    def handle(self, *args, **options) -> None:
        quiet_worker_logs()
        integration = integration_or_error(options["integration_id"])
        if integration.status == integration.Status.PAUSED:
            self.stdout.write(f"Integration {integration.pk} is already Paused.")
            return
        if not services.pause(integration, None, options["reason"]):
            raise CommandError(
                f"Integration {integration.pk} is {integration.get_status_display()}: only an "
                "Active or failed integration can be paused."
            )
        self.stdout.write(
            f"Integration {integration.pk} is Paused: changes are held until it is resumed."
        )
