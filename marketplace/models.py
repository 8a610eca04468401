"""Owners, their contributions of preference pairs, and the admin-held eval sets.

A pair's `content_hash` is over its normalised text (see parsing.normalise_text):
it is unique across the whole marketplace, which is how a copy of another owner's
data is refused (anti-replication), and it is the only index the upload path needs.
"""
from django.conf import settings
from django.db import models

from config.ids import random_id


class Payee(models.Model):
    """Who is paid: a verified person or organisation, with one or more owner accounts.

    A round's players are payees, not accounts (valuation/services.py): all the accepted data of a
    payee's active accounts is one player, paid once. Anyone can sign up and upload, so an account
    earns nothing until staff verify it, which attaches it to a payee; otherwise one person with
    several accounts would be several players and take a larger share (issue 24)."""

    class Status(models.TextChoices):
        PENDING = "pending", "pending verification"
        VERIFIED = "verified", "verified"
        SUSPENDED = "suspended", "suspended"

    name = models.CharField(max_length=150, unique=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    status_changed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                          on_delete=models.SET_NULL, related_name="+")
    status_changed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class DataOwner(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="data_owner")
    display_name = models.CharField(max_length=150, blank=True)
    # Set by staff only (marketplace/payees.py); None until the account is verified.
    payee = models.ForeignKey(Payee, null=True, blank=True, on_delete=models.PROTECT, related_name="accounts")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["user__username"]

    def __str__(self) -> str:
        # A player is a payee: its name is what every round page, statement and export shows.
        if self.payee_id:
            return self.payee.name
        return self.display_name or self.user.get_username()

    @property
    def verification(self) -> str:
        """pending / verified / suspended: the status of this account's payee (pending without one)."""
        return self.payee.status if self.payee_id else Payee.Status.PENDING

    @property
    def name(self) -> str:
        return str(self)


class PairFormat(models.TextChoices):
    TEXT = "text", "explicit prompt (strings)"
    CONVERSATIONAL = "conversational", "conversational (message lists)"


class FileFormat(models.TextChoices):
    JSONL = "jsonl", "JSON Lines"
    CSV = "csv", "CSV"
    PARQUET = "parquet", "Parquet"


class Contribution(models.Model):
    class Status(models.TextChoices):
        # A refused upload keeps only this record (name, hash, reasons) so the owner can
        # see why; none of its pairs is stored (docs/design.md §6).
        ACCEPTED = "accepted", "accepted"
        REFUSED = "refused", "refused"

    id = models.BigIntegerField(primary_key=True, default=random_id, editable=False)  # no count leaks (config/ids.py)
    owner = models.ForeignKey(DataOwner, on_delete=models.CASCADE, related_name="contributions")
    original_name = models.CharField(max_length=255)
    file_format = models.CharField(max_length=16, choices=FileFormat.choices, blank=True)
    sha256 = models.CharField(max_length=64)
    n_pairs = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACCEPTED)
    row_errors = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.original_name} ({self.status}, {self.n_pairs} pairs)"


class PreferencePair(models.Model):
    # Owners see pair ids (pair values, flagged pairs): sequential ones would count everyone's uploads.
    id = models.BigIntegerField(primary_key=True, default=random_id, editable=False)  # config/ids.py
    contribution = models.ForeignKey(Contribution, on_delete=models.CASCADE, related_name="pairs")
    pair_format = models.CharField(max_length=16, choices=PairFormat.choices, default=PairFormat.TEXT)
    # For conversational pairs the fields hold the message list as canonical JSON (lossless).
    prompt = models.TextField()
    chosen = models.TextField()
    rejected = models.TextField()
    content_hash = models.CharField(max_length=64, unique=True)
    row_number = models.PositiveIntegerField()

    class Meta:
        ordering = ["contribution_id", "row_number"]

    def __str__(self) -> str:
        return f"pair {self.row_number} of {self.contribution_id}"


class EvalSet(models.Model):
    """Held out by admins; never used for training (nothing reads it but scoring)."""

    name = models.SlugField(max_length=100, unique=True)
    original_name = models.CharField(max_length=255)
    sha256 = models.CharField(max_length=64)
    n_pairs = models.PositiveIntegerField()
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name


class EvalPair(models.Model):
    eval_set = models.ForeignKey(EvalSet, on_delete=models.CASCADE, related_name="pairs")
    pair_format = models.CharField(max_length=16, choices=PairFormat.choices, default=PairFormat.TEXT)
    prompt = models.TextField()
    chosen = models.TextField()
    rejected = models.TextField()
    content_hash = models.CharField(max_length=64)
    row_number = models.PositiveIntegerField()

    class Meta:
        ordering = ["eval_set_id", "row_number"]
        constraints = [
            models.UniqueConstraint(fields=["eval_set", "content_hash"], name="evalpair_unique_in_set"),
        ]


class NearDupKey(models.Model):
    """The persisted LSH index of near-duplicate detection (neardup.py): one row per band of a held
    prompt's MinHash, pointing at the owner's pair or the eval pair it came from. Rows are written with
    the pairs and deleted with them (CASCADE), so the index is never rebuilt per upload and every web
    process sees the same one."""

    key = models.BigIntegerField()
    pair = models.ForeignKey(PreferencePair, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    eval_pair = models.ForeignKey(EvalPair, null=True, blank=True, on_delete=models.CASCADE, related_name="+")

    class Meta:
        indexes = [models.Index(fields=["key", "pair", "eval_pair"], name="neardupkey_lookup")]
        constraints = [models.CheckConstraint(
            condition=models.Q(pair__isnull=True) ^ models.Q(eval_pair__isnull=True), name="neardupkey_one_source")]


class RefusalTally(models.Model):
    """Per owner and day: what their uploads were refused for. Staff read it to spot an owner probing
    which pairs the marketplace holds (selectors.owner_probing); owners never see it. Counters, so the
    record of refusals stays bounded however many refused uploads there are."""

    owner = models.ForeignKey(DataOwner, on_delete=models.CASCADE, related_name="refusal_tallies")
    day = models.DateField()
    uploads_accepted = models.PositiveIntegerField(default=0)
    uploads_refused = models.PositiveIntegerField(default=0)
    rows_accepted = models.PositiveIntegerField(default=0)
    rows_exact_copy = models.PositiveIntegerField(default=0)  # of another owner's or the owner's own held pair
    rows_near_copy = models.PositiveIntegerField(default=0)
    rows_eval = models.PositiveIntegerField(default=0)  # exact or near copies of eval data
    rows_invalid = models.PositiveIntegerField(default=0)  # format problems, duplicates inside the file

    class Meta:
        ordering = ["-day", "owner_id"]
        constraints = [models.UniqueConstraint(fields=["owner", "day"], name="refusaltally_one_per_day")]

    def __str__(self) -> str:
        return f"{self.owner} on {self.day}"

    @property
    def rows_held(self) -> int:
        return self.rows_exact_copy + self.rows_near_copy + self.rows_eval


class NearDupSignature(models.Model):
    """The MinHash of a held prompt (neardup.py), next to its band keys: candidates the bands find are
    first compared on these (cheap) before the few that may match are compared on their text."""

    pair = models.OneToOneField(PreferencePair, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    eval_pair = models.OneToOneField(EvalPair, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    prompt = models.BinaryField()  # num_perm little-endian uint32

    class Meta:
        constraints = [models.CheckConstraint(
            condition=models.Q(pair__isnull=True) ^ models.Q(eval_pair__isnull=True),
            name="neardupsignature_one_source")]
