"""`manage.py transfer INTEGRATION_ID --direction to-pipedrive|to-snovio [--source ...] [--dry-run]`

Runs the same transfer service as the "Transfer unsynced data" button, in this process, with a
progress bar on stderr, and ends with exactly one summary line on stdout:
`created=N updated=N unchanged=N conflicts=N skipped=N failed=N`.
A transfer of the same integration left unfinished (its worker died) is resumed from its
checkpoint instead of starting a second one.
"""

from __future__ import annotations

import sys
from datetime import datetime, timedelta

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from integrations.models import Integration, SyncRun
from integrations.tasks import create_run

BAR_WIDTH = 30
LIVE_HEARTBEAT = timedelta(seconds=90)


class Command(BaseCommand):
    help = "Transfer contacts between Snov.io and Pipedrive (or preview it with --dry-run)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("integration_id", type=int, help="the integration's id")
        parser.add_argument(
            "--direction",
            required=True,
            choices=["to-pipedrive", "to-snovio"],
            help="which side receives the contacts",
        )
        parser.add_argument(
            "--source",
            choices=["snovio", "pipedrive"],
            default=None,
            help="the app whose values win conflicts (default: the sending side)",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="preview: count and list changes, write nothing"
        )

    def handle(self, *args, **options) -> None:
        from integrations.sync.transfer import transfer

        integration = Integration.objects.filter(pk=options["integration_id"]).first()
        if integration is None:
            raise CommandError(f"No integration with id {options['integration_id']}.")
        missing = [name for name in ("pipedrive", "snovio") if getattr(integration, name) is None]
        if missing:
            raise CommandError(
                f"Integration {integration.pk} is not connected to {' and '.join(missing)}."
            )
        if integration.status not in (Integration.Status.ACTIVE, Integration.Status.SYNCING):
            # Like the Transfer page; Syncing is a transfer left unfinished, resumed below.
            raise CommandError(
                f"Integration {integration.pk} is {integration.get_status_display()}: a transfer "
                "can run only while the integration is Active."
            )
        sends = {
            "to-pipedrive": (integration.sends_to_pipedrive, "Pipedrive"),
            "to-snovio": (integration.sends_to_snovio, "Snov.io"),
        }
        allowed, receiver = sends[options["direction"]]
        if not allowed:
            raise CommandError(
                f"Integration {integration.pk} ({integration.get_direction_display()}) does not "
                f"send data to {receiver}."
            )
        run = create_run(
            integration, options["direction"], options["source"], options["dry_run"], None
        )
        if run.status == SyncRun.Status.RUNNING:
            beat = (run.checkpoint or {}).get("heartbeat")
            if beat and timezone.now() - datetime.fromisoformat(beat) < LIVE_HEARTBEAT:
                raise CommandError(
                    f"Transfer #{run.pk} of integration {integration.pk} is running right now."
                )
            self.stderr.write(f"Resuming unfinished transfer #{run.pk} from its checkpoint.")
        what = "Preview of" if run.dry_run else "Transfer"
        self.stderr.write(
            f"{what} #{run.pk}: {run.get_direction_display()}, "
            f"{run.get_source_app_display()} wins conflicts."
        )
        run = transfer(run, after_page=self._progress)
        self._progress(run, final=True)
        self.stdout.write(run.summary())
        if run.status == SyncRun.Status.FAILED:
            raise CommandError(f"Transfer #{run.pk} stopped: {run.error}")

    def _progress(self, run: SyncRun, final: bool = False) -> None:
        total = max(run.total, run.done, 1)
        filled = int(BAR_WIDTH * run.done / total)
        bar = "#" * filled + "." * (BAR_WIDTH - filled)
        line = f"[{bar}] {run.done}/{run.total} {run.summary()}"
        if sys.stderr.isatty() and not final:
            self.stderr.write("\r" + line, ending="")
        else:
            self.stderr.write(("\r" if sys.stderr.isatty() else "") + line)
        self.stderr.flush()
