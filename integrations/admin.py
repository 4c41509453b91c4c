"""Admin for support staff: see every integration, its settings, runs and events.

Tokens, API secrets and webhook credentials are never shown. Status changes, refreshes and
transfers go through the same services as the pages (admin actions), so each one is recorded
like any other.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from integrations import services, steps
from integrations.models import (
    Connection,
    ConstantField,
    DeleteAction,
    DeletePolicy,
    EmailActivity,
    FieldMapping,
    Integration,
    ListSelection,
    PendingChange,
    RateSlot,
    RecordLink,
    RemoteCatalog,
    StatusChange,
    SyncEvent,
    SyncRun,
    TokenBudget,
    Undo,
)
from integrations.problems import problems_summary
from integrations.sync import runs

SECRET_FIELDS = ("client_secret", "access_token", "refresh_token")
INTEGRATION_SECRETS = ("webhook_secret", "pipedrive_webhook_user", "pipedrive_webhook_password")


class ReadOnlyMixin:
    """Records written by the engine: support staff look, they do not edit."""

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Connection)
class ConnectionAdmin(admin.ModelAdmin):
    list_display = (
        "__str__",
        "owner",
        "provider",
        "auth_kind",
        "status",
        "expires_at",
        "updated_at",
    )
    list_filter = ("provider", "auth_kind", "status")
    search_fields = ("account_name", "account_id", "owner__username", "owner__email")
    exclude = SECRET_FIELDS
    readonly_fields = (
        "owner",
        "provider",
        "auth_kind",
        "account_id",
        "api_domain",
        "client_id",
        "expires_at",
        "status",
        "last_error",
        "has_token",
        "created_at",
        "updated_at",
    )

    @admin.display(boolean=True, description="Token stored")
    def has_token(self, obj: Connection) -> bool:
        return bool(obj.access_token or obj.client_secret)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


class StatusChangeInline(ReadOnlyMixin, admin.TabularInline):
    model = StatusChange
    extra = 0
    fields = ("at", "from_status", "to_status", "changed_by", "reason")
    readonly_fields = fields
    can_delete = False


class ListSelectionInline(admin.TabularInline):
    model = ListSelection
    extra = 0


class FieldMappingInline(admin.TabularInline):
    model = FieldMapping
    extra = 0
    fields = (
        "snovio_field",
        "snovio_label",
        "pipedrive_field",
        "pipedrive_label",
        "data_type",
        "is_system",
        "conflict_rule",
    )
    readonly_fields = ("is_system",)


class ConstantFieldInline(admin.TabularInline):
    model = ConstantField
    extra = 0


@admin.register(Integration)
class IntegrationAdmin(admin.ModelAdmin):
    list_display = ("__str__", "owner", "status", "direction", "launched_at", "updated_at")
    list_filter = ("status", "direction", "pipedrive__auth_kind", "launched_at")
    search_fields = (
        "=id",
        "name",
        "owner__username",
        "owner__email",
        "pipedrive__account_name",
        "snovio__account_name",
    )
    exclude = INTEGRATION_SECRETS
    readonly_fields = (
        "owner",
        "pipedrive",
        "snovio",
        "status",
        "status_reason",
        "launched_at",
        "realtime_rule",
        "conflict_rule",
        "baseline_started_at",
        "baseline_at",
        "last_catch_up_at",
        "last_catch_up_found",
        "last_catch_up_note",
        "pipedrive_webhook_ids",
        "snovio_webhook_ids",
        "pipedrive_synced_until",
        "created_at",
        "updated_at",
    )
    inlines = (StatusChangeInline, ListSelectionInline, FieldMappingInline, ConstantFieldInline)
    actions = (
        "pause_selected",
        "resume_selected",
        "refresh_selected",
        "transfer_to_pipedrive",
        "transfer_to_snovio",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def save_related(self, request: HttpRequest, form, formsets, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        if change:  # an edit here restarts real-time sync like an edit on the settings page
            steps.settings_saved(form.instance, request.user)

    @admin.action(description="Pause selected integrations")
    def pause_selected(self, request: HttpRequest, queryset: QuerySet[Integration]) -> None:
        paused = sum(services.pause(i, request.user, "Paused by support staff") for i in queryset)
        self.message_user(request, f"{paused} integration(s) paused.")

    @admin.action(description="Resume selected integrations (settings are checked)")
    def resume_selected(self, request: HttpRequest, queryset: QuerySet[Integration]) -> None:
        for integration in queryset:
            problems = services.resume(integration, request.user)
            if problems:
                self.message_user(
                    request,
                    f"{integration}: {problems_summary(problems)}",
                    level=messages.WARNING,
                )
        self.message_user(request, "Done.")

    @admin.action(description="Refresh lists, fields and users of selected integrations")
    def refresh_selected(self, request: HttpRequest, queryset: QuerySet[Integration]) -> None:
        for integration in queryset.select_related("pipedrive", "snovio"):
            result, problems = services.refresh(integration, request.user)
            level = messages.WARNING if result.errors or problems else messages.SUCCESS
            note = f" {problems_summary(problems)}" if problems else ""
            self.message_user(request, f"{integration}: {result.summary()}{note}", level=level)

    @admin.action(description="Start a transfer Snov.io → Pipedrive (Snov.io wins conflicts)")
    def transfer_to_pipedrive(self, request: HttpRequest, queryset: QuerySet[Integration]) -> None:
        self._start_transfers(request, queryset, SyncRun.Direction.TO_PIPEDRIVE)

    @admin.action(description="Start a transfer Pipedrive → Snov.io (Pipedrive wins conflicts)")
    def transfer_to_snovio(self, request: HttpRequest, queryset: QuerySet[Integration]) -> None:
        self._start_transfers(request, queryset, SyncRun.Direction.TO_SNOVIO)

    def _start_transfers(self, request: HttpRequest, queryset, direction: str) -> None:
        sends = (
            "sends_to_pipedrive"
            if direction == SyncRun.Direction.TO_PIPEDRIVE
            else "sends_to_snovio"
        )
        for integration in queryset:
            if not getattr(integration, sends):
                self.message_user(
                    request,
                    f"{integration}: its direction ({integration.get_direction_display()}) "
                    "does not send data that way.",
                    level=messages.WARNING,
                )
                continue
            try:
                run = runs.start_transfer(integration, direction, None, False, request.user)
            except runs.TransferUnavailable as exc:
                self.message_user(request, f"{integration}: {exc}", level=messages.WARNING)
            else:
                self.message_user(request, f"{integration}: transfer #{run.pk} is queued.")


@admin.register(StatusChange)
class StatusChangeAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("integration", "from_status", "to_status", "changed_by", "at", "reason")
    list_filter = ("to_status",)
    search_fields = ("integration__name", "reason")


@admin.register(RemoteCatalog)
class RemoteCatalogAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("integration", "kind", "item_count", "refreshed_at")
    list_filter = ("kind",)

    @admin.display(description="Items")
    def item_count(self, obj: RemoteCatalog) -> int:
        return len(obj.items or [])


@admin.register(RecordLink)
class RecordLinkAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = (
        "email",
        "integration",
        "snovio_prospect_id",
        "pipedrive_person_id",
        "updated_at",
    )
    search_fields = ("email", "snovio_prospect_id", "=pipedrive_person_id", "integration__name")


@admin.register(SyncRun)
class SyncRunAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = (
        "pk",
        "integration",
        "direction",
        "source_app",
        "dry_run",
        "status",
        "done",
        "total",
        "created_at",
    )
    list_filter = ("status", "direction", "dry_run", "created_at")
    search_fields = ("=id", "integration__name", "integration__owner__username", "error")
    date_hierarchy = "created_at"


@admin.register(SyncEvent)
class SyncEventAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("at", "integration", "direction", "email", "outcome", "reason")
    list_filter = ("outcome", "direction", "run__dry_run", "at")
    search_fields = ("email", "record_id", "reason", "integration__name")
    date_hierarchy = "at"
    list_select_related = ("integration",)


@admin.register(Undo)
class UndoAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("pk", "integration", "run", "event", "dry_run", "status", "created_at")
    list_filter = ("status", "dry_run", "created_at")
    search_fields = ("=id", "=run__id", "integration__name", "error")
    list_select_related = ("integration",)


@admin.register(EmailActivity)
class EmailActivityAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("email_key", "integration", "activity_id", "status", "updated_at")
    list_filter = ("status",)
    search_fields = ("email_key",)


@admin.register(PendingChange)
class PendingChangeAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("received_at", "integration", "source", "kind", "processed_at", "outcome")
    list_filter = (
        "source",
        "kind",
        ("processed_at", admin.EmptyFieldListFilter),
        "last_error_kind",
        "received_at",
    )
    search_fields = ("record_key", "dedupe_key", "outcome", "integration__name")
    date_hierarchy = "received_at"
    list_select_related = ("integration",)


@admin.register(RateSlot)
class RateSlotAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("key", "expires_at", "count", "reservation")


@admin.register(TokenBudget)
class TokenBudgetAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("key", "day", "spent", "remaining", "daily_limit", "exhausted")


@admin.register(DeletePolicy)
class DeletePolicyAdmin(admin.ModelAdmin):
    list_display = ("integration", "on_pipedrive_delete", "on_snovio_delete", "daily_cap")


@admin.register(DeleteAction)
class DeleteActionAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("integration", "key", "email", "action", "status", "created_at")
    list_filter = ("status", "action", "deleted_in")
    search_fields = ("key", "email", "detail", "integration__name")
    list_select_related = ("integration",)
