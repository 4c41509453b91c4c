"""`manage.py undo TRANSFER_ID [--dry-run]`

Undoes a finished transfer in this process with the same service as the "Undo this transfer"
button, and prints one summary line on stdout: `restored=N removed=N left_alone=N failed=N`.
`--dry-run` previews it (writes nothing) and lists what would change on stderr. An undo of
the transfer left unfinished (its worker died) is resumed; a finished one is not done twice.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from integrations.management.cli import quiet_worker_logs
from integrations.models import SyncRun, Undo
from integrations.sync import undo as undo_service


class Command(BaseCommand):
    help = "Undo a transfer (or preview its undo with --dry-run)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("transfer_id", type=int, help="the transfer's id (its page's number)")
        parser.add_argument(
            "--dry-run", action="store_true", help="preview: count and list, write nothing"
        )

    def handle(self, *args, **options) -> None:
        quiet_worker_logs()
        run = SyncRun.objects.select_related("integration").filter(pk=options["transfer_id"])
        run = run.first()
        if run is None:
            raise CommandError(f"There is no transfer #{options['transfer_id']}.")
        dry_run = options["dry_run"]
        unfinished = Undo.objects.filter(run=run, dry_run=False).exclude(status="done").first()
        try:
            undo = unfinished if unfinished and not dry_run else None
            undo = undo or undo_service.start_undo(
                run.integration, run=run, dry_run=dry_run, queue=False
            )
        except undo_service.UndoRefused as exc:
            raise CommandError(str(exc)) from exc
        undo = undo_service.execute(undo)
        if undo.status != SyncRun.Status.DONE:
            raise CommandError(f"{undo} stopped: {undo.error or undo.get_status_display()}")
        for row in undo.preview:
            fields = ", ".join(c.get("label") or k for k, c in (row.get("fields") or {}).items())
            self.stderr.write(f"{row['email']}: {row['action']} {fields}".rstrip())
        self.stdout.write(undo_service.summary(undo))
