"""`make demo`: migrate, create the demo login, start sandbox + web server + worker.

A command of the sandbox app: `SYNCBRIDGE_SANDBOX=true python manage.py demo` (`make demo`)."""

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from integrations.sandbox.core import remote_settings
from integrations.sandbox.legacy_example import legacy_example
from syncbridge import demo_env

DEMO_USER, DEMO_PASSWORD = "demo", "demo-password"


def _interrupt(signum, frame):
    raise KeyboardInterrupt


class Command(BaseCommand):
    help = "Run the whole demo locally: sandbox (8765), web server (8000) and a worker."

    def add_arguments(self, parser):
        parser.add_argument("--web-port", type=int, default=8000)
        parser.add_argument("--sandbox-port", type=int, default=8765)
        parser.add_argument("--startup-timeout", type=float, default=60)
        parser.add_argument(
            "--legacy-example",
            action="store_true",
            help="also give the demo login an integration on a legacy Pipedrive API token",
        )

    def handle(self, *args, **options):
        web, box = options["web_port"], options["sandbox_port"]
        sandbox_url = f"http://127.0.0.1:{box}"
        web_url = f"http://127.0.0.1:{web}"
        # Ctrl-C (or a plain `kill`) stops all three children, even when started in background.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, _interrupt)
        call_command("migrate", interactive=False, verbosity=0)
        demo_user = self._demo_login()
        if options["legacy_example"]:
            legacy_example(demo_user)
        env = self._child_env(sandbox_url, web_url)
        manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
        shared = self._shared_settings(env)
        procs = {
            "sandbox": subprocess.Popen([*manage, "sandbox", "--port", str(box)], env=env),
            "web": subprocess.Popen(
                [*manage, "runserver", f"127.0.0.1:{web}", "--noreload"], env=env
            ),
            "worker": subprocess.Popen([*manage, "qcluster"], env=env),
        }
        try:
            if shared:
                demo_env.write(shared, self._sandbox_env(env), os.getpid())
            self._wait_ready([f"{sandbox_url}/", f"{web_url}/accounts/login/"], procs, options)
            self.stdout.write(
                self.style.SUCCESS(
                    f"\nSyncBridge demo is running.\n"
                    f"  Open        {web_url}/  (login: {DEMO_USER} / {DEMO_PASSWORD})\n"
                    f"  Sandbox     {sandbox_url}/  (fire campaign events, demo credentials)\n"
                    f"  Admin       {web_url}/admin/\n"
                    f"Other `manage.py` commands run in this folder use the sandbox while the "
                    f"demo runs.\n"
                    f"Press Ctrl-C to stop all three.\n"
                )
            )
            while all(p.poll() is None for p in procs.values()):
                time.sleep(0.5)
            dead = [name for name, p in procs.items() if p.poll() is not None]
            raise CommandError(f"{', '.join(dead)} stopped; shutting the demo down")
        except KeyboardInterrupt:
            self.stdout.write("\nStopping...")
        finally:
            if shared:
                shared.unlink(missing_ok=True)
            for proc in procs.values():
                if proc.poll() is None:
                    proc.send_signal(signal.SIGINT)
            for proc in procs.values():
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()

    def _demo_login(self):
        users = get_user_model().objects
        if not users.filter(username=DEMO_USER).exists():
            users.create_superuser(DEMO_USER, "demo@example.com", DEMO_PASSWORD)
        return users.get(username=DEMO_USER)

    def _child_env(self, sandbox_url: str, web_url: str) -> dict:
        env = dict(os.environ)
        env.setdefault("SYNCBRIDGE_SANDBOX", "true")  # the `sandbox` command lives in that app
        env.setdefault("DEBUG", "true")
        env.setdefault("PUBLIC_URL", web_url)
        for name, value in remote_settings(sandbox_url).items():
            env.setdefault(name, value)
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    @staticmethod
    def _shared_settings(env: dict) -> Path | None:
        """Where the demo tells other commands in this folder about its sandbox."""
        path = env.get("SYNCBRIDGE_DEMO_ENV", settings.DEMO_ENV_FILE)
        return Path(path) if path else None

    @staticmethod
    def _sandbox_env(env: dict) -> dict[str, str]:
        names = ["SYNCBRIDGE_SANDBOX", "PUBLIC_URL", *remote_settings("http://x")]
        return {name: env[name] for name in names if name in env}

    def _wait_ready(self, urls: list[str], procs: dict, options: dict) -> None:
        deadline = time.monotonic() + options["startup_timeout"]
        pending = list(urls)
        while pending:
            if time.monotonic() > deadline:
                raise CommandError(f"not ready after {options['startup_timeout']} s: {pending}")
            for name, proc in procs.items():
                if proc.poll() is not None:
                    raise CommandError(f"{name} exited with code {proc.returncode}")
            try:
                urllib.request.urlopen(pending[0], timeout=2)
                pending.pop(0)
            except OSError:
                time.sleep(0.3)
