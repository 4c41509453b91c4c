"""The filters of the sync history page: bad values get a message, never a 500."""

from __future__ import annotations

from django import forms

from integrations.models import SyncEvent, SyncRun
from integrations.sync.history import HistoryFilter, Source


class HistoryFilterForm(forms.Form):
    email = forms.CharField(required=False, max_length=254, label="Contact email")
    outcome = forms.ChoiceField(
        required=False, choices=[("", "Any outcome"), *SyncEvent.Outcome.choices]
    )
    direction = forms.ChoiceField(
        required=False, choices=[("", "Both directions"), *SyncRun.Direction.choices]
    )
    source = forms.ChoiceField(required=False, choices=Source.CHOICES)
    since = forms.DateField(required=False, label="From", widget=forms.DateInput({"type": "date"}))
    until = forms.DateField(required=False, label="To", widget=forms.DateInput({"type": "date"}))

    def clean(self):
        data = super().clean()
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            self.add_error("until", "The end date is before the start date.")
        return data

    def chosen(self) -> HistoryFilter:
        """The valid filters; a field with a bad value is left out (its error is shown)."""
        data = self.cleaned_data if self.is_bound else {}
        errors = self.errors
        return HistoryFilter(
            **{
                name: value
                for name, value in data.items()
                if name not in errors and value not in (None, "")
            }
        )
