"""`manage.py integrations`: every integration with its status and its queue, one line each."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandParser
from django.db.models import Count, Min, Q

from integrations.connections import ensure_legacy_paused
from integrations.models import Integration

HEADER = (
    "ID",
    "NAME",
    "OWNER",
    "STATUS",
    "DIRECTION",
    "WAITING",
    "OLDEST WAITING",
    "LAST TRANSFER",
)


class Command(BaseCommand):
    help = "List integrations with their status, the changes waiting and the last transfer."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--owner", help="only this user's integrations (username)")
        parser.add_argument(
            "--status", choices=Integration.Status.values, help="only integrations in this status"
        )

    def handle(self, *args, **options) -> None:
        integrations = (
            Integration.objects.select_related("owner", "pipedrive")
            .annotate(
                waiting=Count("pending_changes", filter=Q(pending_changes__processed_at=None)),
                oldest=Min(
                    "pending_changes__received_at",
                    filter=Q(pending_changes__processed_at=None),
                ),
            )
            .order_by("pk")
        )
        if options["owner"]:
            integrations = integrations.filter(owner__username=options["owner"])
        rows = [HEADER]
        for integration in integrations:
            ensure_legacy_paused(integration)  # the list never shows a legacy token as Active
            if options["status"] and integration.status != options["status"]:
                continue
            last = integration.runs.filter(dry_run=False).first()
            rows.append(
                (
                    str(integration.pk),
                    integration.name,
                    integration.owner.get_username(),
                    integration.get_status_display(),
                    integration.get_direction_display(),
                    str(integration.waiting),
                    integration.oldest.strftime("%Y-%m-%d %H:%M") if integration.oldest else "-",
                    f"#{last.pk} {last.get_status_display()}" if last else "-",
                )
            )
        if len(rows) == 1:
            self.stdout.write("No integrations.")
            return
        widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
        for row in rows:
            self.stdout.write(
                "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            )
