"""Keep webhook secrets out of the logs.

A webhook URL holds its integration's secret (`/hooks/<app>/<secret>/`), and Django logs the
path of every 4xx/5xx answer (`django.request`) and, under runserver, every request
(`django.server`). This filter replaces the secret before any handler sees the record.
"""

from __future__ import annotations

import logging
import re

HOOK_PATH = re.compile(r"(/hooks/[^/\s]+/)[^/\s?\"']+")
LOGGERS = ("django.request", "django.server")


def redact(text: str) -> str:
    return HOOK_PATH.sub(r"\1<secret>", text)


class WebhookSecretFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a record that cannot be formatted is left to the handler
            return True
        if "/hooks/" in message:
            record.msg, record.args = redact(message), ()
        return True


def install() -> None:
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, WebhookSecretFilter) for f in logger.filters):
            logger.addFilter(WebhookSecretFilter())
