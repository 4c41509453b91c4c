"""Connections, integrations and their settings, and the sync engine's records."""

import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone

from integrations.crypto import EncryptedTextField


class Provider(models.TextChoices):
    PIPEDRIVE = "pipedrive", "Pipedrive"
    SNOVIO = "snovio", "Snov.io"


class Connection(models.Model):
    """One account on one remote, with the credentials SyncBridge uses to reach it."""

    class AuthKind(models.TextChoices):
        OAUTH = "oauth", "OAuth 2.0"
        API_TOKEN = "api_token", "API token (legacy)"
        CREDENTIALS = "credentials", "API credentials"

    class Status(models.TextChoices):
        OK = "ok", "Connected"
        FAILED = "failed", "Connection failed"
        REVOKED = "revoked", "Disconnected"

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="connections"
    )
    provider = models.CharField(max_length=20, choices=Provider.choices)
    auth_kind = models.CharField(max_length=20, choices=AuthKind.choices)
    account_name = models.CharField(max_length=200, blank=True)
    account_id = models.CharField(max_length=100, blank=True)
    # Pipedrive: the company's API base (from the OAuth token response).
    api_domain = models.URLField(blank=True)
    client_id = models.CharField(max_length=200, blank=True)
    client_secret = EncryptedTextField(blank=True)
    access_token = EncryptedTextField(blank=True)
    refresh_token = EncryptedTextField(blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.OK)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.get_provider_display()} {self.account_name or self.pk}"

    @property
    def is_legacy_token(self) -> bool:
        return self.provider == Provider.PIPEDRIVE and self.auth_kind == self.AuthKind.API_TOKEN

    def token_expired(self, margin_seconds: int = 60) -> bool:
        if not self.expires_at:
            return False
        return self.expires_at <= timezone.now() + timezone.timedelta(seconds=margin_seconds)


def new_webhook_secret() -> str:
    return secrets.token_urlsafe(24)


class RealtimeRule(models.TextChoices):
    """Who wins a field changed on both sides before SyncBridge synced it."""

    LATEST = "latest", "The most recent change wins"
    SNOVIO = "snovio", "Snov.io always wins"
    PIPEDRIVE = "pipedrive", "Pipedrive always wins"


class ConflictRule(models.TextChoices):
    """What happens when a field pair holds different values on the two sides.

    Set per field pair (`FieldMapping.conflict_rule`, blank: the integration's default) and
    for the integration (`Integration.conflict_rule`); what each rule means in a transfer and
    in real time is defined in `integrations/sync/conflicts.py`.
    """

    SOURCE_APP = "source_app", "The source app wins"
    FILL_EMPTY = "fill_empty", "Fill empty fields only"
    KEEP_PIPEDRIVE = "keep_pipedrive", "Never overwrite on Pipedrive's side"
    KEEP_SNOVIO = "keep_snovio", "Never overwrite on Snov.io's side"
    LATEST = "latest", "The most recent change wins"


class Integration(models.Model):
    """One Snov.io account joined to one Pipedrive company, with every setting of the 7 steps."""

    class Direction(models.TextChoices):
        TWO_WAY = "two_way", "Two-way"
        TO_PIPEDRIVE = "to_pipedrive", "To Pipedrive only"
        TO_SNOVIO = "to_snovio", "To Snov.io only"

    class Status(models.TextChoices):
        PAUSED = "paused", "Paused"
        ACTIVE = "active", "Active"
        SYNCING = "syncing", "Syncing"
        FAILED = "failed", "Connection failed"

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="integrations"
    )
    name = models.CharField(max_length=200, default="Snov.io ↔ Pipedrive")
    pipedrive = models.ForeignKey(
        Connection, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    snovio = models.ForeignKey(
        Connection, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    direction = models.CharField(
        max_length=20, choices=Direction.choices, default=Direction.TWO_WAY
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PAUSED)
    status_reason = models.TextField(blank=True)
    # Step 3: data exchange.
    target_list_id = models.CharField(max_length=64, blank=True)
    target_list_name = models.CharField(max_length=200, blank=True)
    pipedrive_owner_id = models.BigIntegerField(null=True, blank=True)
    pipedrive_owner_name = models.CharField(max_length=200, blank=True)
    all_lists = models.BooleanField(default=True)
    include_email_history = models.BooleanField(default=False)
    only_with_email = models.BooleanField(default=True)
    # The second match key (sync/matching.py): none, or the LinkedIn profile URL, read in
    # Pipedrive from the custom field `second_key_field` (a field key, 40-char hash).
    second_key = models.CharField(
        max_length=20, blank=True, choices=[("", "None"), ("linkedin", "LinkedIn profile URL")]
    )
    second_key_field = models.CharField(max_length=64, blank=True)
    # Lifecycle.
    launched_at = models.DateTimeField(null=True, blank=True)
    # The baseline: the contacts that existed at launch, recorded without writing anything.
    baseline_started_at = models.DateTimeField(null=True, blank=True)
    baseline_at = models.DateTimeField(null=True, blank=True)
    # Snov.io lists whose prospects are in the baseline (or known to be new), by id.
    baseline_lists = models.JSONField(default=list, blank=True)
    # Who "the source app" is in real time (`sync/conflicts.py`): latest = no fixed app.
    realtime_rule = models.CharField(
        max_length=20, choices=RealtimeRule.choices, default=RealtimeRule.LATEST
    )
    # The conflict rule of every field pair that has none of its own.
    conflict_rule = models.CharField(
        max_length=20, choices=ConflictRule.choices, default=ConflictRule.SOURCE_APP
    )
    webhook_secret = models.CharField(max_length=64, default=new_webhook_secret, unique=True)
    pipedrive_webhook_user = models.CharField(max_length=64, default=new_webhook_secret)
    pipedrive_webhook_password = EncryptedTextField(default=new_webhook_secret)
    pipedrive_webhook_ids = models.JSONField(default=list, blank=True)
    snovio_webhook_ids = models.JSONField(default=list, blank=True)
    # The scheduled catch-up: Pipedrive persons updated since this moment are looked at.
    pipedrive_synced_until = models.DateTimeField(null=True, blank=True)
    last_catch_up_at = models.DateTimeField(null=True, blank=True)
    last_catch_up_found = models.PositiveIntegerField(default=0)
    last_catch_up_note = models.TextField(blank=True)
    # Webhook subscriptions as the last catch-up found and left them (integrations.subscriptions).
    subscriptions_health = models.JSONField(default=dict, blank=True)
    subscriptions_checked_at = models.DateTimeField(null=True, blank=True)
    # Snov.io campaign history read up to this moment (integrations.sync.campaign_history).
    campaign_history_until = models.DateTimeField(null=True, blank=True)
    # Where the catch-up's rolling re-check of Snov.io goes on, the list sizes it last saw and
    # how long a full round takes at this size (`sync/catchup.py`).
    catch_up_state = models.JSONField(default=dict, blank=True)
    # When a drain of the real-time queue was last queued and not started yet (None: none is
    # waiting). Deliveries queue a drain only when none waits (`sync.runs.request_drain`).
    drain_requested_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} #{self.pk}"

    @property
    def sends_to_pipedrive(self) -> bool:
        return self.direction in (self.Direction.TWO_WAY, self.Direction.TO_PIPEDRIVE)

    @property
    def sends_to_snovio(self) -> bool:
        return self.direction in (self.Direction.TWO_WAY, self.Direction.TO_SNOVIO)


class StatusChange(models.Model):
    """Every change of an integration's status, who made it and why."""

    integration = models.ForeignKey(
        Integration, on_delete=models.CASCADE, related_name="status_changes"
    )
    from_status = models.CharField(max_length=20, choices=Integration.Status.choices)
    to_status = models.CharField(max_length=20, choices=Integration.Status.choices)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    reason = models.TextField(blank=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-at", "-pk"]

    def __str__(self) -> str:
        return f"{self.from_status} → {self.to_status}"


class ListSelection(models.Model):
    """A Snov.io list chosen to send prospects (used when `all_lists` is off)."""

    integration = models.ForeignKey(
        Integration, on_delete=models.CASCADE, related_name="list_selections"
    )
    list_id = models.CharField(max_length=64)
    list_name = models.CharField(max_length=200, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["integration", "list_id"], name="unique_list_choice")
        ]

    def __str__(self) -> str:
        return self.list_name or self.list_id


class FieldMapping(models.Model):
    """A Snov.io field paired with a Pipedrive person field. System pairs are locked."""

    integration = models.ForeignKey(
        Integration, on_delete=models.CASCADE, related_name="field_mappings"
    )
    snovio_field = models.CharField(max_length=100)
    snovio_label = models.CharField(max_length=200, blank=True)
    pipedrive_field = models.CharField(max_length=100)
    pipedrive_label = models.CharField(max_length=200, blank=True)
    data_type = models.CharField(max_length=30, default="text")
    is_system = models.BooleanField(default=False)
    position = models.PositiveIntegerField(default=0)
    # Blank: the integration's default rule.
    conflict_rule = models.CharField(max_length=20, choices=ConflictRule.choices, blank=True)

    class Meta:
        ordering = ["-is_system", "position", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["integration", "snovio_field"], name="unique_snovio_field_mapping"
            ),
            models.UniqueConstraint(
                fields=["integration", "pipedrive_field"], name="unique_pipedrive_field_mapping"
            ),
        ]

    def __str__(self) -> str:
        left = self.snovio_label or self.snovio_field
        return f"{left} ↔ {self.pipedrive_label or self.pipedrive_field}"


class ConstantField(models.Model):
    """A fixed value stamped into one field of every record a side receives."""

    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="constants")
    side = models.CharField(max_length=20, choices=Provider.choices)
    field_key = models.CharField(max_length=100)
    field_label = models.CharField(max_length=200, blank=True)
    value = models.CharField(max_length=500)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["integration", "side", "field_key"], name="unique_constant_per_field"
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_side_display()}: {self.field_label or self.field_key} = {self.value}"


class RemoteCatalog(models.Model):
    """Cached lists, fields, users, pipelines and stages of the connected accounts."""

    class Kind(models.TextChoices):
        SNOVIO_LISTS = "snovio_lists", "Snov.io lists"
        SNOVIO_FIELDS = "snovio_fields", "Snov.io fields"
        PIPEDRIVE_FIELDS = "pipedrive_fields", "Pipedrive person fields"
        PIPEDRIVE_USERS = "pipedrive_users", "Pipedrive users"
        PIPEDRIVE_PIPELINES = "pipedrive_pipelines", "Pipedrive pipelines"
        PIPEDRIVE_STAGES = "pipedrive_stages", "Pipedrive stages"

    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="catalog")
    kind = models.CharField(max_length=30, choices=Kind.choices)
    items = models.JSONField(default=list)
    refreshed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["integration", "kind"], name="unique_catalog_kind")
        ]

    def __str__(self) -> str:
        return self.get_kind_display()


class RecordLink(models.Model):
    """A Snov.io prospect and the Pipedrive person it is synced with, keyed by email."""

    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="links")
    email = models.CharField(max_length=254)
    snovio_prospect_id = models.CharField(max_length=64, blank=True)
    pipedrive_person_id = models.BigIntegerField(null=True, blank=True)
    # The contact's second-key value, tagged and normalised (`linkedin:linkedin.com/in/x`):
    # Snov.io has no search by social link, so the links are how a change finds it again.
    match_key = models.CharField(max_length=300, blank=True)
    # The base of the three-way merge (`sync/threeway.py`): per side, the mapped values it held
    # when SyncBridge last looked or wrote ({"snovio": {...}, "pipedrive": {...}}; a side
    # missing was never seen), and the pairs on which both sides agreed then ("in_sync").
    base = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["integration", "email"], name="unique_link_email")
        ]
        indexes = [
            models.Index(fields=["integration", "pipedrive_person_id"]),
            models.Index(fields=["integration", "snovio_prospect_id"]),
            models.Index(fields=["integration", "match_key"], name="link_match_key"),
        ]

    def __str__(self) -> str:
        return self.email


class SyncRun(models.Model):
    """A manual transfer (or its preview): paged, checkpointed, resumable."""

    class Direction(models.TextChoices):
        TO_PIPEDRIVE = "to_pipedrive", "Snov.io → Pipedrive"
        TO_SNOVIO = "to_snovio", "Pipedrive → Snov.io"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="runs")
    direction = models.CharField(max_length=20, choices=Direction.choices)
    source_app = models.CharField(max_length=20, choices=Provider.choices)
    dry_run = models.BooleanField(default=False)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    conflicts = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    api_calls = models.PositiveIntegerField(default=0)
    checkpoint = models.JSONField(default=dict, blank=True)
    preview = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # The worker executing the run holds a short lease it renews while alive; a lease that
    # has expired marks a run whose worker died (`integrations.sync.locks.RunLease`).
    lease_owner = models.CharField(max_length=64, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    # The token of the form submit that started the run: the same submit twice is one run.
    idempotency_key = models.CharField(max_length=64, blank=True)

    ACTIVE = (Status.QUEUED, Status.RUNNING)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            # One transfer per integration at a time, enforced by the database (previews are
            # read-only and may run beside it).
            models.UniqueConstraint(
                fields=["integration"],
                condition=models.Q(dry_run=False, status__in=["queued", "running"]),
                name="syncrun_one_active_transfer",
            ),
            models.UniqueConstraint(
                fields=["integration", "idempotency_key"],
                condition=~models.Q(idempotency_key=""),
                name="syncrun_one_run_per_submit",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_direction_display()} #{self.pk}"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE

    def summary(self) -> str:
        return (
            f"created={self.created} updated={self.updated} unchanged={self.unchanged} "
            f"conflicts={self.conflicts} skipped={self.skipped} failed={self.failed}"
        )


class SyncEvent(models.Model):
    """What happened to one record and why: created, updated, unchanged, skipped, failed."""

    class Outcome(models.TextChoices):
        CREATED = "created", "Created"
        UPDATED = "updated", "Updated"
        UNCHANGED = "unchanged", "Unchanged"
        SKIPPED = "skipped", "Skipped"
        FAILED = "failed", "Failed"
        REMOVED = "removed", "Removed"  # by an undo: a record a transfer had created

    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="events")
    run = models.ForeignKey(
        SyncRun, null=True, blank=True, on_delete=models.CASCADE, related_name="events"
    )
    # An undo's events: the undo that wrote it and the event it undoes (unique: an event is
    # undone at most once, whichever undo, of a transfer or of one record, gets there first).
    undo = models.ForeignKey(
        "Undo", null=True, blank=True, on_delete=models.CASCADE, related_name="events"
    )
    # SET_NULL: the history's prune may drop an old transfer event, never the undo's.
    undoes = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="undone_by"
    )
    direction = models.CharField(max_length=20, choices=SyncRun.Direction.choices)
    email = models.CharField(max_length=254, blank=True, db_index=True)
    record_id = models.CharField(max_length=64, blank=True)
    outcome = models.CharField(max_length=20, choices=Outcome.choices)
    reason = models.TextField(blank=True)
    changes = models.JSONField(default=dict, blank=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-at", "-pk"]
        # The history page pages an integration's events newest first; the prune finds old ones.
        # A transfer looks up, one page at a time, which records and emails it already moved.
        indexes = [
            models.Index(fields=["integration", "-at"], name="syncevent_history"),
            models.Index(fields=["run", "record_id"], name="sync_event_run_record"),
            models.Index(fields=["run", "email"], name="sync_event_run_email"),
        ]

    def __str__(self) -> str:
        return f"{self.email or self.record_id}: {self.outcome}"


class Undo(models.Model):
    """Undoing a transfer (`run`) or one record's change (`event`), or the preview of it.

    The database allows one real undo per transfer and per event; a failed one is resumed,
    never started twice (`integrations/sync/undo.py`).
    """

    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="undos")
    run = models.ForeignKey(
        SyncRun, null=True, blank=True, on_delete=models.CASCADE, related_name="undos"
    )
    # The change undone, for an undo of one record (SET_NULL: the history's prune may drop it).
    event = models.ForeignKey(
        SyncEvent, null=True, blank=True, on_delete=models.SET_NULL, related_name="undos"
    )
    dry_run = models.BooleanField(default=False)
    status = models.CharField(
        max_length=20, choices=SyncRun.Status.choices, default=SyncRun.Status.QUEUED
    )
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    restored = models.PositiveIntegerField(default=0)
    removed = models.PositiveIntegerField(default=0)
    left_alone = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    # A preview's rows, shaped like a transfer preview's (`email`, `action`, `fields`), plus
    # `left_alone` ({field: {"label", "reason"}}) for what the undo would not touch.
    preview = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    # The integration's status when a real undo started (it is Syncing meanwhile, so the
    # webhooks of the undo's own writes wait); put back when it ends, even after a crash.
    status_before = models.CharField(max_length=20, blank=True)
    # Events are undone newest first: the oldest one done so far (a resumed undo goes on below).
    checkpoint_event_id = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)  # after every page: a live worker's sign
    finished_at = models.DateTimeField(null=True, blank=True)

    ACTIVE = SyncRun.ACTIVE

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["run"],
                condition=models.Q(dry_run=False, run__isnull=False),
                name="undo_once_per_transfer",
            ),
            models.UniqueConstraint(
                fields=["event"],
                condition=models.Q(dry_run=False, event__isnull=False),
                name="undo_once_per_event",
            ),
            # One real undo at a time per integration: it holds the integration Syncing.
            models.UniqueConstraint(
                fields=["integration"],
                condition=models.Q(dry_run=False, status__in=["queued", "running"]),
                name="undo_one_active_per_integration",
            ),
        ]

    def __str__(self) -> str:
        target = f"transfer #{self.run_id}" if self.run_id else f"one change (#{self.event_id})"
        return f"{'Preview of undo' if self.dry_run else 'Undo'} of {target}"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE


class EmailActivity(models.Model):
    """The Pipedrive activity that shows one campaign email (the email history).

    The row is reserved (no `activity_id`) *before* the activity is created, so a worker that
    dies between the create and recording its id leaves a trace: the retry looks for the
    activity on the person (by its marker) instead of creating a second one.
    """

    integration = models.ForeignKey(
        Integration, on_delete=models.CASCADE, related_name="email_activities"
    )
    # sha1 of campaign, recipient and subject (`email_history.activity_key`).
    email_key = models.CharField(max_length=64)
    activity_id = models.BigIntegerField(null=True, blank=True)
    # The email status the activity shows ("Sent", "Opened", ...); while reserved, the one
    # it is being created with.
    status = models.CharField(max_length=20, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "email activities"
        constraints = [
            models.UniqueConstraint(
                fields=["integration", "email_key"], name="unique_email_activity"
            )
        ]

    def __str__(self) -> str:
        return f"{self.email_key[:12]} → {self.activity_id or 'reserved'} ({self.status})"


class PendingChange(models.Model):
    """A change received from either side, applied in order by one worker at a time."""

    class Source(models.TextChoices):
        PIPEDRIVE = "pipedrive", "Pipedrive webhook"
        SNOVIO = "snovio", "Snov.io webhook"
        CATCH_UP = "catch_up", "Scheduled catch-up"

    integration = models.ForeignKey(
        Integration, on_delete=models.CASCADE, related_name="pending_changes"
    )
    source = models.CharField(max_length=20, choices=Source.choices)
    kind = models.CharField(max_length=50)

    class ErrorKind(models.TextChoices):
        NONE = "", "None"
        TEMPORARY = "temporary", "Temporary (retried)"
        RATE_LIMIT = "rate_limit", "Rate limit (retried)"
        PERMANENT = "permanent", "Refused by the remote"
        AUTH = "auth", "Connection failed"
        BUG = "bug", "SyncBridge error"

    # Idempotency key of the delivery: a duplicate delivery is stored once.
    dedupe_key = models.CharField(max_length=200)
    # The contact the change is about ("pipedrive:<id>", "snovio:<id>"); changes to one contact
    # that wait together are coalesced into one (it is read fresh when applied anyway).
    record_key = models.CharField(max_length=120, blank=True)
    payload = models.JSONField(default=dict)
    received_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error_kind = models.CharField(
        max_length=20, choices=ErrorKind.choices, blank=True, default=ErrorKind.NONE
    )
    outcome = models.TextField(blank=True)

    class Meta:
        ordering = ["received_at", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["integration", "dedupe_key"], name="unique_pending_delivery"
            ),
            models.UniqueConstraint(
                fields=["integration", "record_key"],
                condition=models.Q(processed_at__isnull=True, started_at__isnull=True)
                & ~models.Q(record_key=""),
                name="one_waiting_change_per_record",
            ),
        ]
        indexes = [
            models.Index(
                fields=["integration", "received_at"],
                condition=models.Q(processed_at__isnull=True),
                name="pending_change_waiting",
            ),
            # A contact's latest outcomes (`catchup.gave_up`), per catch-up finding.
            models.Index(
                fields=["integration", "record_key", "-processed_at"],
                condition=models.Q(processed_at__isnull=False),
                name="pending_change_outcomes",
            ),
            # The failed changes shown on the settings page, newest first.
            models.Index(
                fields=["integration", "-processed_at"],
                condition=models.Q(outcome__startswith="failed:"),
                name="pending_change_failed",
            ),
            # The prune of processed changes (`queue.prune_processed`).
            models.Index(
                fields=["integration", "processed_at"],
                condition=models.Q(processed_at__isnull=False),
                name="pending_change_processed",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.source} {self.kind} #{self.pk}"


class RateBucket(models.Model):
    """One row per remote account: the row workers lock while they reserve request slots."""

    key = models.CharField(max_length=200, unique=True)

    def __str__(self) -> str:
        return self.key


class RateSlot(models.Model):
    """Request slots of one remote account, counted until `expires_at` (Unix seconds).

    A reservation (`reservation` set) holds `count` slots for a worker's next requests; once
    they are sent it is replaced by the exact send times, so the log ends when the remote's
    rolling window forgets each request (see integrations/ratelimit.py).
    """

    key = models.CharField(max_length=200)
    expires_at = models.FloatField()
    count = models.PositiveIntegerField()
    reservation = models.CharField(max_length=40, blank=True)

    class Meta:
        indexes = [models.Index(fields=["key", "expires_at"], name="rate_slot_key_expiry")]

    def __str__(self) -> str:
        return f"{self.key}: {self.count} until {self.expires_at:.2f}"


class TokenBudget(models.Model):
    """What we know of a Pipedrive company's daily token budget today (UTC day).

    `spent` is what SyncBridge spent by its own count (each endpoint's token cost); `remaining`
    and `daily_limit` are the remote's own figures when its answers carry them, authoritative
    since every user and app of the company draws from the same budget.
    """

    key = models.CharField(max_length=200, unique=True)
    day = models.DateField()
    spent = models.PositiveIntegerField(default=0)
    calls = models.PositiveIntegerField(default=0)
    daily_limit = models.PositiveIntegerField(null=True, blank=True)
    remaining = models.IntegerField(null=True, blank=True)
    exhausted = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.key} {self.day}: {self.spent} spent"


class Alert(models.Model):
    """Something that stopped an integration's work; its owner is told by email (rate-limited)."""

    class Cause(models.TextChoices):
        CONNECTION_FAILED = "connection_failed", "Connection failed"
        TRANSFER_FAILED = "transfer_failed", "Transfer failed"
        RECORD_FAILED = "record_failed", "A record failed three times"

    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="alerts")
    cause = models.CharField(max_length=30, choices=Cause.choices)
    message = models.TextField()
    at = models.DateTimeField(default=timezone.now)
    # The address the email went to; empty when none was sent (one per cause per hour).
    emailed_to = models.CharField(max_length=254, blank=True)

    class Meta:
        ordering = ["-at", "-pk"]
        indexes = [models.Index(fields=["integration", "cause", "at"], name="alert_by_cause")]

    def __str__(self) -> str:
        return f"{self.get_cause_display()} #{self.integration_id}"


class RemoteUsage(models.Model):
    """Remote calls and rate-limit waits per remote account and hour (the health charts)."""

    # The rate limiter's key: "pipedrive:<account>", "snovio:<account>" (or the remote's name).
    account = models.CharField(max_length=200)
    hour = models.DateTimeField()
    calls = models.PositiveIntegerField(default=0)
    rate_limit_waits = models.PositiveIntegerField(default=0)
    waited_seconds = models.FloatField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "hour"], name="unique_usage_hour")
        ]

    def __str__(self) -> str:
        return f"{self.account}@{self.hour:%Y-%m-%d %H}h: {self.calls}"


# --- delete handling (issue 12, part 3; logic in integrations/sync/deletes.py) ----------------
class OnPipedriveDelete(models.TextChoices):
    """What a person deleted in Pipedrive does to its linked Snov.io prospect. Snov.io's API
    documents no way to delete a prospect, remove one from a list, or tag one
    (docs/specs/deletes.md): the closest documented mark is a list of its own."""

    IGNORE = "ignore", "Nothing (the prospect stays as it is)"
    MARK = "mark", "Add the prospect to the Snov.io list “Deleted in Pipedrive”"


class OnSnovioDelete(models.TextChoices):
    """What a prospect deleted in Snov.io does to its linked Pipedrive person. Pipedrive has
    no archive for persons (API v2 documents only delete): a label or a delete."""

    IGNORE = "ignore", "Nothing (the person stays as it is)"
    LABEL = "label", "Label the person “Deleted in Snov.io”"
    DELETE = "delete", "Delete the person in Pipedrive too"


class DeletePolicy(models.Model):
    """An integration's delete handling, per direction, chosen on the settings page."""

    integration = models.OneToOneField(
        Integration, on_delete=models.CASCADE, related_name="delete_policy"
    )
    on_pipedrive_delete = models.CharField(
        max_length=20, choices=OnPipedriveDelete.choices, default=OnPipedriveDelete.IGNORE
    )
    on_snovio_delete = models.CharField(
        max_length=20, choices=OnSnovioDelete.choices, default=OnSnovioDelete.IGNORE
    )
    # Deleting in the other app is taken at most `daily_cap` times per UTC day; beyond it a
    # deletion waits for a person to approve it.
    daily_cap = models.PositiveIntegerField(default=25)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"delete policy #{self.integration_id}"


class DeleteAction(models.Model):
    """One contact deleted in one app, and what SyncBridge did about it in the other.

    Its unique key (the app and the record deleted) makes a delete act once, however often
    it is noticed (webhook, retry, catch-up); the row also stops later events about the
    surviving record from syncing it back (a tombstone)."""

    class Status(models.TextChoices):
        TO_DO = "to_do", "Being applied"
        DONE = "done", "Done"
        WAITING = "waiting", "Waiting for approval (over the daily cap)"
        REJECTED = "rejected", "Rejected"
        FAILED = "failed", "Failed"

    integration = models.ForeignKey(
        Integration, on_delete=models.CASCADE, related_name="delete_actions"
    )
    deleted_in = models.CharField(max_length=20, choices=Provider.choices)
    key = models.CharField(max_length=100)  # "<app>:<id of the deleted record>"
    email = models.CharField(max_length=254, blank=True)
    snovio_prospect_id = models.CharField(max_length=64, blank=True)
    pipedrive_person_id = models.BigIntegerField(null=True, blank=True)
    action = models.CharField(max_length=20)  # OnPipedriveDelete / OnSnovioDelete value
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.TO_DO)
    detail = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["integration", "key"], name="unique_delete_once")
        ]
        indexes = [
            models.Index(fields=["integration", "pipedrive_person_id"], name="delete_by_person"),
            models.Index(fields=["integration", "snovio_prospect_id"], name="delete_by_prospect"),
        ]

    def __str__(self) -> str:
        return f"{self.key} -> {self.action} ({self.status})"


class DeleteQuota(models.Model):
    """Deletions taken in the other app per integration and UTC day (row-locked when taken)."""

    integration = models.ForeignKey(
        Integration, on_delete=models.CASCADE, related_name="delete_quotas"
    )
    day = models.DateField()
    used = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["integration", "day"], name="unique_delete_quota_day")
        ]

    def __str__(self) -> str:
        return f"#{self.integration_id} {self.day}: {self.used}"
