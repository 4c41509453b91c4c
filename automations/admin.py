"""Admin: scenarios with their actions, and the read-only log of automation runs."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from automations.actions import outcome_summary
from automations.models import ActionOutcome, AutomationRun, Scenario, ScenarioAction


class ScenarioActionInline(admin.TabularInline):
    model = ScenarioAction
    extra = 0
    fields = ("position", "kind", "enabled", "pipeline_id", "stage_id", "subject")
    ordering = ("position", "pk")


@admin.register(Scenario)
class ScenarioAdmin(admin.ModelAdmin):
    list_display = ("integration", "trigger", "enabled", "action_count", "created_at")
    list_filter = ("trigger", "enabled")
    search_fields = ("integration__name", "integration__owner__username")
    inlines = [ScenarioActionInline]

    @admin.display(description="Actions")
    def action_count(self, obj: Scenario) -> int:
        return obj.actions.count()


class ActionOutcomeInline(admin.TabularInline):
    model = ActionOutcome
    extra = 0
    can_delete = False
    fields = ("position", "kind", "outcome", "reason", "objects", "at")
    readonly_fields = fields
    ordering = ("position", "pk")

    @admin.display(description="Pipedrive objects")
    def objects(self, obj: ActionOutcome) -> str:
        return outcome_summary(obj.pipedrive_objects or {})

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(AutomationRun)
class AutomationRunAdmin(admin.ModelAdmin):
    """The log: what each event did. Read-only, as a log must be."""

    list_display = ("received_at", "integration", "trigger", "email", "status", "finished_at")
    list_filter = ("status", "trigger")
    search_fields = ("email", "event_key", "integration__name", "integration__owner__username")
    date_hierarchy = "received_at"
    inlines = [ActionOutcomeInline]
    readonly_fields = (
        "integration",
        "event_key",
        "trigger",
        "email",
        "status",
        "reason",
        "received_at",
        "finished_at",
        "payload",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
