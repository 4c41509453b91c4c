"""`manage.py resume INTEGRATION_ID`: back to Active after the same checks as the pages."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from integrations import services
from integrations.management.cli import integration_or_error, problems_line, quiet_worker_logs


class Command(BaseCommand):
    help = "Resume a paused (or failed) integration; its settings and connections are checked."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("integration_id", type=int)

    def handle(self, *args, **options) -> None:
        quiet_worker_logs()
        integration = integration_or_error(options["integration_id"])
        if integration.status in (integration.Status.ACTIVE, integration.Status.SYNCING):
            self.stdout.write(
                f"Integration {integration.pk} is already {integration.get_status_display()}."
            )
            return
        problems = services.resume(integration, None)
        if problems:
            raise CommandError(
                f"Integration {integration.pk} could not resume: {problems_line(problems)}"
            )
        self.stdout.write(f"Integration {integration.pk} is Active: real-time sync is running.")
