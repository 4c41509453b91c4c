"""`{{ connection|plain_error }}`: a connection's last error in plain words, with its fix."""

from __future__ import annotations

from django import template

from integrations import plain_errors
from integrations.models import Connection

register = template.Library()


@register.filter
def plain_error(connection: Connection) -> plain_errors.PlainError:
    return plain_errors.explain(connection.provider, connection.last_error)
