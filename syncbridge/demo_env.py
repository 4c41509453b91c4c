"""The settings a running demo shares with every `manage.py` command in its project folder.

`manage.py demo` writes `var/demo.env` (the sandbox URLs and the sandbox switch) when it starts
and removes it when it stops, so `manage.py transfer ...` in a second shell talks to the
demo's sandbox instead of the real APIs. The file names the demo's process: a file left behind
by a demo that was killed is ignored. Variables set in the environment always win.
"""

from __future__ import annotations

import os
from pathlib import Path

PID_KEY = "SYNCBRIDGE_DEMO_PID"


def write(path: Path, values: dict[str, str], pid: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"# Written by `manage.py demo` (process {pid}); removed when it stops."]
    lines += [f"{name}={value}" for name, value in {**values, PID_KEY: str(pid)}.items()]
    path.write_text("\n".join(lines) + "\n")


def read(path: Path) -> dict[str, str]:
    """The file's values, or nothing when there is no file or its demo is gone."""
    try:
        text = path.read_text()
    except OSError:
        return {}
    values = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith("#"):
            values[name.strip()] = value.strip()
    return values if _alive(values.get(PID_KEY, "")) else {}


def load(path: Path) -> None:
    for name, value in read(path).items():
        os.environ.setdefault(name, value)


def _alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True
