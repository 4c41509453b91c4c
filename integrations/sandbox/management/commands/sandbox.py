"""`python manage.py sandbox`: both simulators as one HTTP server (for the demo and benchmarks).

A command of the sandbox app, so it exists only with SYNCBRIDGE_SANDBOX=true."""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from integrations.sandbox import server
from integrations.sandbox.core import Sandbox


class Command(BaseCommand):
    help = "Run the Pipedrive and Snov.io sandbox simulators as an HTTP server."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8765)
        parser.add_argument(
            "--public-url", help="Address handed out in api_domain (default http://HOST:PORT)"
        )
        parser.add_argument("--state-file", default=settings.SANDBOX_STATE_FILE)
        parser.add_argument(
            "--seed",
            choices=["demo", "empty"],
            default="demo",
            help="Data for a new state file: the demo company or nothing",
        )
        parser.add_argument("--reset", action="store_true", help="Forget saved state and re-seed")
        parser.add_argument(
            "--strict-spec",
            action="store_true",
            help="Answer 400 to Pipedrive requests that violate the official OpenAPI spec",
        )

    def handle(self, *args, **options):
        public_url = options["public_url"] or f"http://{options['host']}:{options['port']}"
        state_file = options["state_file"] or None
        if options["reset"] and state_file:
            Path(state_file).unlink(missing_ok=True)
        sandbox = Sandbox(
            public_url=public_url,
            state_file=state_file,
            seed=options["seed"] == "demo",
            settings={"strict_spec": options["strict_spec"]},
        )
        self.stdout.write(f"Sandbox on {public_url} (state: {state_file or 'memory'})")
        try:
            server.run(sandbox, options["host"], options["port"])
        except OSError as exc:  # the port is taken, or the host is not this machine's
            raise CommandError(
                f"Cannot listen on {options['host']}:{options['port']}: "
                f"{exc.strerror or exc}. Choose another with --port."
            ) from None
