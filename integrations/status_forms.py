"""Forms of the settings page and the transfer page: status, real-time rule, transfer."""

from __future__ import annotations

import re
import secrets

from django import forms

from integrations.models import Integration, Provider, RealtimeRule, SyncRun


class StatusForm(forms.Form):
    status = forms.ChoiceField(
        choices=[
            (Integration.Status.ACTIVE, "Active"),
            (Integration.Status.PAUSED, "Paused"),
        ]
    )


class RealtimeRuleForm(forms.Form):
    realtime_rule = forms.ChoiceField(
        label="When a field changed in both apps before it was synced",
        choices=RealtimeRule.choices,
        help_text="Real time carries each change to the other app. If both apps changed the "
        "same field before SyncBridge saw either change, this decides which value stays; the "
        "sync history shows both values and the winner.",
    )


SOURCE_HELP = (
    "When a contact exists in both apps (same email), it is not duplicated: the two records "
    "are merged, and where a field differs the source app's value wins. An empty value never "
    "erases a filled one."
)


SUBMIT_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,64}")


class TransferForm(forms.Form):
    direction = forms.ChoiceField(
        label="Transfer", choices=SyncRun.Direction.choices, widget=forms.RadioSelect
    )
    source_app = forms.ChoiceField(
        label="Source app (wins conflicts)",
        choices=Provider.choices,
        widget=forms.RadioSelect,
        help_text=SOURCE_HELP,
    )
    dry_run = forms.BooleanField(
        label="Preview first: show what would change, write nothing",
        required=False,
    )
    # A fresh token in every rendered form: the same submit sent twice (a double click, a
    # resent POST) starts one run, and the second one shows the first one's page.
    submit_token = forms.CharField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args, integration: Integration, **kwargs):
        directions = []
        if integration.sends_to_pipedrive:
            directions.append(SyncRun.Direction.TO_PIPEDRIVE)
        if integration.sends_to_snovio:
            directions.append(SyncRun.Direction.TO_SNOVIO)
        first = directions[0]
        kwargs.setdefault(
            "initial", {"direction": first.value, "source_app": sender_of(first.value)}
        )
        super().__init__(*args, **kwargs)
        self.integration = integration
        self.fields["direction"].choices = [(d.value, d.label) for d in directions]
        self.fields["submit_token"].initial = secrets.token_urlsafe(24)

    def clean_submit_token(self) -> str:
        """A token we could have made, else none (a garbled one never stops a transfer)."""
        token = self.cleaned_data.get("submit_token") or ""
        return token if SUBMIT_TOKEN.fullmatch(token) else ""


def sender_of(direction: str) -> str:
    """The app records come from in a transfer direction (the default source app)."""
    return Provider.SNOVIO if direction == SyncRun.Direction.TO_PIPEDRIVE else Provider.PIPEDRIVE
