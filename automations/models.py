"""Scenarios: a Snov.io campaign trigger followed by ordered Pipedrive actions."""

from django.db import models
from django.utils import timezone

from integrations.models import Integration


class Trigger(models.TextChoices):
    EMAIL_SENT = "email_sent", "Campaign email sent"
    EMAIL_OPENED = "email_opened", "Campaign email opened"
    LINK_CLICKED = "link_clicked", "Link clicked"
    REPLY_RECEIVED = "reply_received", "Reply received"
    EMAIL_BOUNCED = "email_bounced", "Email bounced"
    CAMPAIGN_FINISHED = "campaign_finished", "Prospect finished campaign"


class ActionKind(models.TextChoices):
    CREATE_DEAL = "create_deal", "Create a deal"
    MOVE_TO_STAGE = "move_to_stage", "Move the deal to a specific stage"
    NEXT_STAGE = "next_stage", "Move the deal to the next stage"
    ADD_ACTIVITY = "add_activity", "Add an activity to a contact"


class Scenario(models.Model):
    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="scenarios")
    trigger = models.CharField(max_length=30, choices=Trigger.choices)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["integration", "trigger"], name="one_scenario_per_trigger"
            )
        ]

    def __str__(self) -> str:
        return self.get_trigger_display()


class ScenarioAction(models.Model):
    scenario = models.ForeignKey(Scenario, on_delete=models.CASCADE, related_name="actions")
    kind = models.CharField(max_length=30, choices=ActionKind.choices)
    enabled = models.BooleanField(default=True)
    position = models.PositiveIntegerField(default=0)
    pipeline_id = models.BigIntegerField(null=True, blank=True)
    stage_id = models.BigIntegerField(null=True, blank=True)
    subject = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["position", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["scenario", "kind"], name="action_once_per_trigger")
        ]

    def __str__(self) -> str:
        return self.get_kind_display()


class AutomationRun(models.Model):
    """One campaign event and what its trigger's actions did."""

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting (integration not active)"
        DONE = "done", "Done"
        PARTIAL = "partial", "Done with skips or failures"
        NO_SCENARIO = "no_scenario", "No enabled scenario"
        IGNORED = "ignored", "Ignored"

    integration = models.ForeignKey(
        Integration, on_delete=models.CASCADE, related_name="automation_runs"
    )
    event_key = models.CharField(max_length=200)
    trigger = models.CharField(max_length=30, choices=Trigger.choices)
    email = models.CharField(max_length=254, blank=True)
    payload = models.JSONField(default=dict)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    reason = models.TextField(blank=True)
    received_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["integration", "event_key"], name="event_runs_once")
        ]
        indexes = [
            # Every task looks up its contact's oldest pending run (twice): only the pending
            # runs are indexed, so that look-up stays small however long the log grows.
            models.Index(
                fields=["integration", "email", "received_at"],
                condition=models.Q(status="pending"),
                name="automation_pending_contact",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_trigger_display()} for {self.email or self.event_key}"


class ActionOutcome(models.Model):
    class Outcome(models.TextChoices):
        DONE = "done", "Done"
        SKIPPED = "skipped", "Skipped"
        FAILED = "failed", "Failed"

    run = models.ForeignKey(AutomationRun, on_delete=models.CASCADE, related_name="outcomes")
    kind = models.CharField(max_length=30, choices=ActionKind.choices)
    position = models.PositiveIntegerField(default=0)
    outcome = models.CharField(max_length=20, choices=Outcome.choices)
    reason = models.TextField(blank=True)
    pipedrive_objects = models.JSONField(default=dict, blank=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["position", "pk"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.outcome}"
