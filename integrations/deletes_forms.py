"""The settings page's Deletes card: what a delete in one app does in the other."""

from __future__ import annotations

from django import forms
from django.core.validators import MaxValueValidator

from integrations.models import DeletePolicy, Integration, OnSnovioDelete
from integrations.sync import deletes

MAX_DAILY_CAP = 10_000


class DeletePolicyForm(forms.ModelForm):
    """Only the directions the integration sends are offered; deleting in Pipedrive needs the
    confirmation box ticked."""

    confirm_deletes = forms.BooleanField(
        required=False,
        label="I understand that prospects deleted in Snov.io delete their Pipedrive persons",
    )

    class Meta:
        model = DeletePolicy
        fields = ["on_pipedrive_delete", "on_snovio_delete", "daily_cap"]
        labels = {
            "on_pipedrive_delete": "When a person is deleted in Pipedrive",
            "on_snovio_delete": "When a prospect is deleted in Snov.io",
            "daily_cap": "Deletions in Pipedrive per day (UTC) before they wait for approval",
        }
        help_texts = {
            "on_pipedrive_delete": (
                "Snov.io's API has no way to delete a prospect, remove one from a list or tag "
                "it: the closest mark it documents is a list, “Deleted in Pipedrive”."
            ),
            "on_snovio_delete": (
                "Pipedrive has no archive for persons: a label (an option of the person "
                "Labels field) or a delete (Pipedrive keeps it 30 days in its trash)."
            ),
        }

    def __init__(self, *args, integration: Integration, **kwargs):
        kwargs.setdefault("instance", DeletePolicy.objects.filter(integration=integration).first())
        super().__init__(*args, **kwargs)
        self.instance.integration = integration
        if "daily_cap" in self.fields:
            cap = self.fields["daily_cap"]
            cap.max_value = MAX_DAILY_CAP
            cap.validators.append(MaxValueValidator(MAX_DAILY_CAP))
            cap.widget.attrs["max"] = MAX_DAILY_CAP
        self.fields["confirm_deletes"].initial = (
            self.instance.on_snovio_delete == OnSnovioDelete.DELETE
        )
        # To Pipedrive only: Pipedrive deletes act nowhere; to Snov.io only: the reverse.
        if not integration.sends_to_snovio:
            del self.fields["on_pipedrive_delete"]
        if not integration.sends_to_pipedrive:
            for name in ("on_snovio_delete", "daily_cap", "confirm_deletes"):
                del self.fields[name]

    def clean(self) -> dict:
        data = super().clean()
        deleting = data.get("on_snovio_delete") == OnSnovioDelete.DELETE
        if deleting and not data.get("confirm_deletes"):
            self.add_error(
                "confirm_deletes",
                "Tick this box to confirm: persons will be deleted in Pipedrive.",
            )
        return data


def card_context(integration: Integration, form: DeletePolicyForm | None = None) -> dict:
    """What the card shows: the form, today's count, the deletions waiting and the latest."""
    policy = deletes.policy_for(integration)
    return {
        "deletes_form": form or DeletePolicyForm(integration=integration),
        "deletes_policy": policy,
        "deletes_today": deletes.taken_today(integration),
        "deletes_awaiting": deletes.awaiting(integration),
        "deletes_recent": deletes.recent(integration)[:10],
    }
