"""`manage.py transfer INTEGRATION_ID --direction to-pipedrive|to-snovio [--source ...] [--dry-run]`

Runs the same transfer service as the "Transfer unsynced data" button, in this process, with one
progress line on stderr (redrawn in place on a terminal) and exactly one summary line on stdout:
`created=N updated=N unchanged=N conflicts=N skipped=N failed=N`. A preview (`--dry-run`) writes
nothing, so it runs while the integration is Paused too.
A transfer of the same integration left unfinished (its worker died) is resumed from its
checkpoint instead of starting a second one; one that another process is executing right now
is not touched: the command says "Transfer #N of integration I is already running." and fails.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from integrations.management.cli import integration_or_error, quiet_worker_logs
from integrations.models import Integration, SyncRun
from integrations.sync.locks import LEASE
from integrations.sync.runs import WATCH_DELAY, arm_watch, disarm_watch, open_run
from integrations.sync.transfer import Slice, run_slice

BAR_WIDTH = 30


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
        quiet_worker_logs()
        integration = integration_or_error(options["integration_id"])
        missing = [name for name in ("pipedrive", "snovio") if getattr(integration, name) is None]
        if missing:
            raise CommandError(
                f"Integration {integration.pk} is not connected to {' and '.join(missing)}."
            )
        runnable = [Integration.Status.ACTIVE, Integration.Status.SYNCING]
        if options["dry_run"]:
            runnable.append(Integration.Status.PAUSED)
        if integration.status not in runnable:
            # Like the Transfer page; Syncing is a transfer left unfinished, resumed below.
            raise CommandError(
                f"Integration {integration.pk} is {integration.get_status_display()}: a transfer "
                "can run only while the integration is Active (a --dry-run preview also while "
                "it is Paused)."
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
        run, created = open_run(
            integration, options["direction"], options["source"], options["dry_run"], None
        )
        if not created and _lease_alive(run):
            raise CommandError(self._already_running(run))
        if not created:
            self.stderr.write(f"Resuming unfinished transfer #{run.pk} from its checkpoint.")
        what = "Preview of" if run.dry_run else "Transfer"
        self.stderr.write(
            f"{what} #{run.pk}: {run.get_direction_display()}, "
            f"{run.get_source_app_display()} wins conflicts."
        )
        if not run.dry_run:
            # Should this process die, a worker of the task queue takes the run over.
            arm_watch(run.pk, timezone.now() + LEASE + WATCH_DELAY)
        run, state = run_slice(run, after_page=self._progress)
        if state is Slice.BUSY:
            raise CommandError(self._already_running(run))
        disarm_watch(run.pk)
        self._progress(run, final=True)
        self.stdout.write(run.summary())
        if run.status == SyncRun.Status.FAILED:
            raise CommandError(f"Transfer #{run.pk} stopped: {run.error}")

    @staticmethod
    def _already_running(run: SyncRun) -> str:
        return f"Transfer #{run.pk} of integration {run.integration_id} is already running."

    def _progress(self, run: SyncRun, final: bool = False) -> None:
        """One progress line: redrawn in place on a terminal, written once at the end
        otherwise (a log file gets no line per page). The counts are stdout's summary."""
        total = max(run.total, run.done, 1)
        filled = int(BAR_WIDTH * run.done / total)
        bar = "#" * filled + "." * (BAR_WIDTH - filled)
        line = f"[{bar}] {run.done}/{run.total}"
        if self.stderr.isatty():
            self.stderr.write("\r" + line, ending="\n" if final else "")
        elif final:
            self.stderr.write(line)
        self.stderr.flush()


def _lease_alive(run: SyncRun) -> bool:
    """Another process executes the run right now (its lease has not expired)."""
    return bool(run.lease_owner and run.lease_expires_at and run.lease_expires_at > timezone.now())
