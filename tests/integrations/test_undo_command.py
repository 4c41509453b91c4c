"""`manage.py undo`: the same undo as the button, one summary line, a CommandError if refused."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from integrations.models import SyncRun
from integrations.sync.runs import create_run
from integrations.sync.transfer import transfer
from tests.factories import fast_limits  # noqa: F401
from tests.integrations.test_undo import person_by_email, to_pipedrive_scene

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_limits")]


def undo(*args) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("undo", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_the_command_previews_then_undoes_a_transfer_once(user, empty_sandbox):
    integration, _, _ = to_pipedrive_scene(user, empty_sandbox)
    run = transfer(create_run(integration, SyncRun.Direction.TO_PIPEDRIVE, "snovio"))

    out, err = undo(str(run.pk), "--dry-run")
    assert out.strip() == "restored=2 removed=2 left_alone=0 failed=0"
    assert "cy@x.example: removed" in err and person_by_email(empty_sandbox, "cy@x.example")

    out, _ = undo(str(run.pk))
    assert out.strip() == "restored=2 removed=2 left_alone=0 failed=0"
    assert person_by_email(empty_sandbox, "cy@x.example") is None
    with pytest.raises(CommandError, match="already undone"):
        undo(str(run.pk))
    with pytest.raises(CommandError, match="no transfer #999"):
        undo("999")
