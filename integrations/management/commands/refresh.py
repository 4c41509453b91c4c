"""`manage.py refresh INTEGRATION_ID`: reload lists, fields and users, check the settings."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from integrations import services
from integrations.management.cli import integration_or_error, problems_line, quiet_worker_logs
from integrations.models import Provider
from integrations.plain_errors import explain


class Command(BaseCommand):
    help = "Reload an integration's lists, fields and users from both apps and check its settings."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("integration_id", type=int)

    def handle(self, *args, **options) -> None:
        quiet_worker_logs()
        integration = integration_or_error(options["integration_id"])
        if integration.pipedrive is None and integration.snovio is None:
            raise CommandError(f"Integration {integration.pk} is not connected to either app.")
        result, problems = services.refresh(integration, None)
        if result.errors:
            reasons = " ".join(
                f"Could not reload from {Provider(p).label}: {explain(p, error)}"
                for p, error in result.errors.items()
            )
            raise CommandError(f"Integration {integration.pk}: {reasons}")
        self.stdout.write(f"Integration {integration.pk}: {result.summary()}")
        if problems:
            raise CommandError(
                f"Integration {integration.pk} needs attention: {problems_line(problems)}"
            )
