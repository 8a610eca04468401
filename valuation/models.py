"""Valuation rounds and everything that makes their numbers traceable.

A round snapshots its participants (owner, data hash, contributions) when it is
created, records its full config (seeds included) as JSON, and links every
artifact by content hash: owner models are cached by (base model hash, owner data
hash, training config hash) and scores by (model hash, eval set hash), so a later
round reuses them and a replay can check them.
"""
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models

from config.ids import random_id
from marketplace.models import Contribution, DataOwner, EvalSet, Payee


class Utility(models.TextChoices):
    PREFERENCE_ACCURACY = "preference_accuracy", "preference accuracy (0–1)"
    BT_LOGLIK = "bt_loglik", "Bradley–Terry log-likelihood (≤ 0)"
    REWARD = "reward", "reward: judged generations of the composed model (per objective)"


class Composition(models.TextChoices):
    SUM = "sum", "sum (sequential DPO)"
    MEAN = "mean", "size-weighted mean (pooled DPO)"


class PayoutPolicy(models.TextChoices):
    CLIP = "clip", "Shapley value (negatives paid nothing)"
    MARGIN_SHARE = "margin_share", "margin share (split-proof: splitting one's data over payees earns nothing)"


class Estimator(models.TextChoices):
    AUTO = "auto", "auto"
    EXACT = "exact", "exact (all 2^n coalitions)"
    PERMUTATION = "permutation", "antithetic permutation sampling"
    STRATIFIED = "stratified", "stratified sampling"
    KERNEL = "kernel", "paired KernelSHAP"
    STRUCTURED = "structured", "structured (analytic prior + control-variate sampling)"


class BaseModel(models.Model):
    """A base model the marketplace holds: a plain Hugging Face directory under ARTIFACTS_DIR/base_models/<name>,
    written once by `import_base_model` (or `build_base_model`) and never replaced, since rounds trained on it.
    `content_hash` is the hash rounds record as `base_model_hash` (stages/common.model_dir_hash)."""

    class Source(models.TextChoices):
        HF_DIR = "hf_dir", "Hugging Face directory"
        GGUF = "gguf", "GGUF file (dequantised to float32)"
        PACKAGE = "package", "installed package's GGUF file"
        BUILT = "built", "built here (build_base_model)"

    # A directory name and an API/CLI handle: no separators, no leading dot.
    name = models.CharField(max_length=64, unique=True, validators=[RegexValidator(
        r"^[A-Za-z0-9][A-Za-z0-9._-]*$", "a base model name is letters, digits, '.', '_' and '-', starting with a "
        "letter or digit (e.g. smollm2-135m-instruct)")])
    path = models.CharField(max_length=500)
    source_kind = models.CharField(max_length=16, choices=Source.choices)
    source = models.CharField(max_length=500)  # where it came from: a path, a file, a package
    source_hash = models.CharField(max_length=64, blank=True)  # of the source: a repeated import is known unread
    architecture = models.CharField(max_length=100)
    n_parameters = models.BigIntegerField()
    context_length = models.PositiveIntegerField()
    has_chat_template = models.BooleanField()
    dtype = models.CharField(max_length=16)
    content_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ValuationRound(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "draft"
        QUEUED = "queued", "queued"
        TRAINING = "training", "training owner models"
        SCORING = "scoring", "scoring the eval set"
        VALUING = "valuing", "computing values and payouts"
        DONE = "done", "done"
        FAILED = "failed", "failed"
        CANCELLED = "cancelled", "cancelled"

    ACTIVE = (Status.QUEUED, Status.TRAINING, Status.SCORING, Status.VALUING)
    STAGES = ("training", "scoring", "valuing")

    id = models.BigIntegerField(primary_key=True, default=random_id, editable=False)  # no count leaks (config/ids.py)
    name = models.CharField(max_length=150, unique=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    eval_set = models.ForeignKey(EvalSet, on_delete=models.PROTECT, related_name="rounds")
    eval_set_hash = models.CharField(max_length=64)
    base_model_path = models.CharField(max_length=500)
    base_model_hash = models.CharField(max_length=64)
    # The registered base model the round ran on; null for a raw directory (CLI) and for older rounds.
    base_model = models.ForeignKey(BaseModel, null=True, blank=True, on_delete=models.PROTECT, related_name="rounds")
    utility = models.CharField(max_length=32, choices=Utility.choices, default=Utility.PREFERENCE_ACCURACY)
    composition = models.CharField(max_length=8, choices=Composition.choices, default=Composition.SUM)
    estimator = models.CharField(max_length=16, choices=Estimator.choices, default=Estimator.AUTO)
    # What the pool is split by (engine/allocation.py); also recorded in `config` for replay.
    payout_policy = models.CharField(max_length=16, choices=PayoutPolicy.choices, default=PayoutPolicy.CLIP)
    estimator_used = models.CharField(max_length=16, blank=True)
    n_evaluations = models.BigIntegerField(null=True, blank=True)  # utility evaluations the estimator made
    stopped_because = models.CharField(max_length=16, blank=True)  # "exact" | "target" | "budget"
    misallocation_bound = models.FloatField(null=True, blank=True)  # est. share of the pool that may be misallocated
    # Pairwise Shapley interaction index (n × n, participant-index order): < 0 redundant, > 0 complementary.
    interactions = models.JSONField(default=list, blank=True)
    seed = models.PositiveIntegerField(default=0)
    # Everything that determines the result: training config, beta, seeds, library versions.
    config = models.JSONField(default=dict, blank=True)
    pool = models.DecimalField(max_digits=18, decimal_places=4, validators=[MinValueValidator(Decimal("0"))])
    currency = models.CharField(max_length=3, default="USD")
    decimals = models.PositiveSmallIntegerField(default=2)

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    progress = models.JSONField(default=dict, blank=True)  # {stage: {"done": k, "total": m}}
    timings = models.JSONField(default=dict, blank=True)  # {stage: seconds}
    error = models.TextField(blank=True)
    payout_note = models.TextField(blank=True)  # e.g. why nothing was paid
    utilities_path = models.CharField(max_length=500, blank=True)  # full 2^n table (.npy)
    utilities_hash = models.CharField(max_length=64, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # A runner claims the round; a stale heartbeat means it died and another may resume.
    runner = models.CharField(max_length=100, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    approved_at = models.DateTimeField(null=True, blank=True)
    approved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="approved_rounds")
    # Opt-in: after valuing, value every pair and cluster the data (stages/data_quality.py).
    data_quality = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE

    @property
    def minor_unit(self) -> Decimal:
        """The currency's smallest amount, e.g. 0.01: every amount shown or exported is quantized to it."""
        return Decimal(1).scaleb(-self.decimals)

    @property
    def fidelity(self) -> dict | None:
        """The latest finished fidelity check, as the round page shows it (FidelityReport.page_data)."""
        report = self.fidelity_reports.filter(status="done").order_by("-finished_at", "-id").first()
        return report.page_data() if report else None


class OwnerModel(models.Model):
    """A trained DPO model, reusable by every round with the same cache key."""

    cache_key = models.CharField(max_length=64, unique=True)
    base_model_hash = models.CharField(max_length=64)
    data_hash = models.CharField(max_length=64)
    config_hash = models.CharField(max_length=64)
    artifact_path = models.CharField(max_length=500)
    model_hash = models.CharField(max_length=64)
    metrics = models.JSONField(default=dict, blank=True)
    seconds = models.FloatField(default=0.0)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"owner model {self.cache_key[:12]}"


class RoundOwner(models.Model):
    """A player of a round — a payee — and a snapshot of its data at round creation.

    `contributions` are the accepted data of all the payee's active accounts; `owner` is the account
    that stands for the payee in the round's rows (values, payouts, pair values: the first of its
    accounts by username). Which payee owns the rows is recorded here, so moving an account to another
    payee later does not move the round's payouts with it. Rounds from before payees existed have no
    payee: their rows belong to `owner`'s account alone."""

    round = models.ForeignKey(ValuationRound, on_delete=models.CASCADE, related_name="participants")
    owner = models.ForeignKey(DataOwner, on_delete=models.PROTECT, related_name="participations")
    payee = models.ForeignKey(Payee, null=True, blank=True, on_delete=models.PROTECT, related_name="participations")
    index = models.PositiveSmallIntegerField()  # bit position in coalition masks
    contributions = models.ManyToManyField(Contribution, related_name="round_uses")
    n_pairs = models.PositiveIntegerField()
    # What TRL trains on (engine/lengths.py), checked at creation: pairs it keeps (whole or cut at max_length)
    # and pairs it cuts. None on rounds created before the check.
    n_usable = models.PositiveIntegerField(null=True, blank=True)
    n_truncated = models.PositiveIntegerField(null=True, blank=True)
    # Tokens TRL trains on per epoch (both sequences of each usable pair, cut at max_length), measured at
    # creation like the counts above: what the round's time estimate is made of. None on older rounds.
    n_tokens = models.PositiveBigIntegerField(null=True, blank=True)
    data_hash = models.CharField(max_length=64)
    # How the owner's prompts reached the model (stages.common.prompt_format): "text", "chat template",
    # flattened conversations, or the counts of a mix. Empty on rounds created before it was recorded.
    prompt_format = models.CharField(max_length=120, blank=True, default="")
    owner_model = models.ForeignKey(OwnerModel, null=True, blank=True, on_delete=models.PROTECT)
    model_reused = models.BooleanField(default=False)  # came from the cache, not trained for this round

    class Meta:
        ordering = ["round_id", "index"]
        constraints = [
            models.UniqueConstraint(fields=["round", "owner"], name="roundowner_unique_owner"),
            models.UniqueConstraint(fields=["round", "index"], name="roundowner_unique_index"),
        ]

    def __str__(self) -> str:
        return f"{self.owner} in {self.round}"

    @property
    def n_dropped(self) -> int:
        return 0 if self.n_usable is None else self.n_pairs - self.n_usable

    @property
    def training_size(self) -> int:
        """The owner's data size as training sees it (the `mean` composition's weight): pairs TRL drops
        weigh nothing, so padding an upload with untrainable pairs buys no weight."""
        return self.n_pairs if self.n_usable is None else self.n_usable


class RoundExclusion(models.Model):
    """An owner left out of a round when it was created, and why: their data could not train a model in it.
    The round runs with the others; the owner and the admin see the reason."""

    round = models.ForeignKey(ValuationRound, on_delete=models.CASCADE, related_name="exclusions")
    owner = models.ForeignKey(DataOwner, on_delete=models.PROTECT, related_name="round_exclusions")
    n_pairs = models.PositiveIntegerField()
    n_dropped = models.PositiveIntegerField()  # pairs TRL would remove from training
    reason = models.TextField()

    class Meta:
        ordering = ["round_id", "owner_id"]
        constraints = [models.UniqueConstraint(fields=["round", "owner"], name="roundexclusion_unique_owner")]

    def __str__(self) -> str:
        return f"{self.owner} excluded from {self.round}"


class ScoreCache(models.Model):
    """Response log-probs of every eval pair under one model; computed once, reused by every round."""

    model_hash = models.CharField(max_length=64)
    eval_hash = models.CharField(max_length=64)
    chosen_logps = models.JSONField()  # list of float, one per eval pair, in eval-set row order
    rejected_logps = models.JSONField()
    seconds = models.FloatField(default=0.0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["model_hash", "eval_hash"], name="scorecache_unique")]


class CoalitionUtility(models.Model):
    """v(S) for small rounds (the full table of any size is in the round's .npy artifact)."""

    round = models.ForeignKey(ValuationRound, on_delete=models.CASCADE, related_name="coalition_utilities")
    mask = models.BigIntegerField()
    size = models.PositiveSmallIntegerField()
    value = models.FloatField()

    class Meta:
        ordering = ["round_id", "mask"]
        constraints = [models.UniqueConstraint(fields=["round", "mask"], name="coalitionutility_unique")]


class OwnerValue(models.Model):
    round = models.ForeignKey(ValuationRound, on_delete=models.CASCADE, related_name="values")
    owner = models.ForeignKey(DataOwner, on_delete=models.PROTECT, related_name="values")
    shapley = models.FloatField()
    stderr = models.FloatField(default=0.0)
    ci_low = models.FloatField()
    ci_high = models.FloatField()
    banzhaf = models.FloatField(null=True, blank=True)
    leave_one_out = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["round_id", "-shapley"]
        constraints = [models.UniqueConstraint(fields=["round", "owner"], name="ownervalue_unique")]


class PayoutQuerySet(models.QuerySet):
    def active(self):
        """What the round pays now: one row per paid owner (payout entries no reversal cancels)."""
        return self.filter(kind=Payout.Kind.PAYOUT, reversal__isnull=True)

    def originals(self):
        """What the valuation computed, before any correction (what a replay must reproduce)."""
        return self.filter(kind=Payout.Kind.PAYOUT, replaces__isnull=True)


class Payout(models.Model):
    """A ledger entry. Drafts may be replaced by a re-run; approved entries are never changed or
    deleted (a database trigger enforces it, migration 0004_ledger). A correction appends two
    approved entries: a reversal (the negative of the entry it cancels, `reverses`) and a new payout
    (`replaces` = that reversal). So, per (round, owner): one original, each entry reversed at most
    once, each reversal followed by at most one new payout — at most one active payout, by database
    constraints. Σ of all a round's entries == Σ of its active payouts."""

    class Status(models.TextChoices):
        DRAFT = "draft", "draft"
        APPROVED = "approved", "approved"

    class Kind(models.TextChoices):
        PAYOUT = "payout", "payout"
        REVERSAL = "reversal", "reversal"

    round = models.ForeignKey(ValuationRound, on_delete=models.PROTECT, related_name="payouts")
    owner = models.ForeignKey(DataOwner, on_delete=models.PROTECT, related_name="payouts")
    amount = models.DecimalField(max_digits=18, decimal_places=4)
    share = models.DecimalField(max_digits=12, decimal_places=10)
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.PAYOUT)
    reverses = models.OneToOneField("self", null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="reversal")  # a reversal: the entry it cancels
    replaces = models.OneToOneField("self", null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="replacement")  # a corrected payout: the reversal it follows
    reason = models.TextField(blank=True)  # why a correction was made (reversal and new payout alike)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    approved_at = models.DateTimeField(null=True, blank=True)

    objects = PayoutQuerySet.as_manager()

    class Meta:
        ordering = ["round_id", "-amount", "owner_id"]
        constraints = [
            models.UniqueConstraint(fields=["round", "owner"], name="payout_one_original_per_owner_round",
                                    condition=models.Q(kind="payout", replaces__isnull=True)),
            models.CheckConstraint(name="payout_kind_links", condition=(
                models.Q(kind="payout", reverses__isnull=True, amount__gte=0)
                | models.Q(kind="reversal", reverses__isnull=False, replaces__isnull=True, amount__lte=0,
                           status="approved"))),
        ]

    def save(self, *args, **kwargs):
        if self.pk and Payout.objects.filter(pk=self.pk, status=self.Status.APPROVED).exists():
            raise ValidationError("approved payouts are immutable; record a correction instead")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        if self.status == self.Status.APPROVED:
            raise ValidationError("approved payouts are immutable")
        return super().delete(*args, **kwargs)


class FidelityReport(models.Model):
    """A check of a round's language-model arithmetic against coalition models trained for real
    (engine/fidelity.py): per coalition both utilities, and correlations and Shapley values per
    utility × composition × trained mode. Requested by an admin; runs in the background."""

    class Status(models.TextChoices):
        QUEUED = "queued", "queued"
        RUNNING = "running", "training coalition models"
        DONE = "done", "done"
        FAILED = "failed", "failed"

    class Mode(models.TextChoices):
        SEQUENTIAL = "sequential", "sequential DPO (what sum approximates)"
        POOLED = "pooled", "pooled DPO (what mean approximates)"
        BOTH = "both", "both"

    id = models.BigIntegerField(primary_key=True, default=random_id, editable=False)  # owners see it (config/ids.py)
    round = models.ForeignKey(ValuationRound, on_delete=models.CASCADE, related_name="fidelity_reports")
    mode = models.CharField(max_length=10, choices=Mode.choices, default=Mode.BOTH)
    n_coalitions = models.PositiveIntegerField()  # coalitions compared, ∅ and singletons included
    seed = models.PositiveIntegerField(default=0)  # of the stratified coalition sample
    exhaustive = models.BooleanField(default=False)  # every coalition trained: trained Shapley values are exact
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    progress = models.JSONField(default=dict, blank=True)  # {"done": k, "total": m} models trained or scored
    error = models.TextField(blank=True)
    # {"trained": fine-tunes run, "reused": models found on disk, "seconds": training time, "total_seconds"}
    trainings = models.JSONField(default=dict, blank=True)
    # [{"mask", "size", "members", "arithmetic": {comp: {utility: v}}, "trained": {mode: {utility: v}},
    #   "models": {mode: model hash}}]
    coalitions = models.JSONField(default=list, blank=True)
    # [{"utility", "composition", "mode", "matching", "n", "pearson", "spearman", "mae", "n_multi",
    #   "pearson_multi", "spearman_multi", "shapley_spearman", "shapley_exact", "max_payout_diff",
    #   "max_payout_diff_owner"}]
    correlations = models.JSONField(default=list, blank=True)
    # [{"utility", "composition", "mode", "exact", "owners", "arithmetic", "trained",
    #   "arithmetic_shares", "trained_shares"}]
    shapley = models.JSONField(default=list, blank=True)
    headline = models.JSONField(default=dict, blank=True)  # the round's utility × composition × matching mode row
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["round_id", "-created_at", "-id"]

    def __str__(self) -> str:
        return f"fidelity check {self.pk} of {self.round}"

    def page_data(self) -> dict:
        """The round page's fidelity panel: the headline comparison as {"metric", "mode", "composition",
        "note", "summary": {label: number}, "rows": [{"label", "trained", "composed"}]}."""
        h = self.headline
        if not h:
            return {}
        names = {"preference_accuracy": "preference accuracy", "bt_loglik": "Bradley–Terry log-likelihood"}
        summary = {"Pearson r": h["pearson"], "Spearman ρ": h["spearman"], "mean absolute error": h["mae"],
                   "Spearman ρ of Shapley values": h["shapley_spearman"],
                   "largest payout difference (share of pool)": h["max_payout_diff"]}
        rows = [{"label": "{" + ", ".join(c["members"]) + "}", "mask": c["mask"],
                 "trained": c["trained"][h["mode"]][h["utility"]],
                 "composed": c["arithmetic"][h["composition"]][h["utility"]]} for c in self.coalitions]
        note = (f"{h['composition']} composition vs. {h['mode']} DPO on {h['n']} coalitions"
                f"{' (all)' if self.exhaustive else ' (stratified sample)'}; largest payout difference: "
                f"{h['max_payout_diff_owner']}.")
        if (self.trainings.get("method") or {}).get("fine_tune") == "lora":
            note += (" Coalitions trained as LoRA adapters, like the owners'; each sequential stage was merged into "
                     "the model the next stage started from.")
        return {"metric": names.get(h["utility"], h["utility"]), "mode": h["mode"], "composition": h["composition"],
                "note": note, "summary": {k: v for k, v in summary.items() if v is not None}, "rows": rows,
                "report_id": self.pk}


class ObjectiveValue(models.Model):
    """One owner's Shapley value under one objective of a `reward` round; across objectives it is the
    owner's data signature. The round's OwnerValue rows hold the payout objective's values."""

    round = models.ForeignKey(ValuationRound, on_delete=models.CASCADE, related_name="objective_values")
    owner = models.ForeignKey(DataOwner, on_delete=models.PROTECT, related_name="objective_values")
    objective = models.CharField(max_length=32)
    shapley = models.FloatField()
    stderr = models.FloatField(default=0.0)
    ci_low = models.FloatField()
    ci_high = models.FloatField()
    n_evaluations = models.BigIntegerField()  # utility evaluations of this objective's estimate
    method = models.CharField(max_length=24)  # estimator that produced it ("exact", "kernel", ...)

    class Meta:
        ordering = ["round_id", "objective", "-shapley"]
        constraints = [models.UniqueConstraint(fields=["round", "owner", "objective"], name="objectivevalue_unique")]


class CoalitionGeneration(models.Model):
    """A coalition's responses to the eval prompts in a `reward` round, with its utility per objective.
    Written as each coalition is decoded, so a resumed round decodes nothing twice."""

    round = models.ForeignKey(ValuationRound, on_delete=models.CASCADE, related_name="generations")
    mask = models.BigIntegerField()  # bit i ⇔ participant index i is in the coalition
    size = models.PositiveSmallIntegerField()
    scores = models.JSONField()  # {objective: mean judge score}
    responses = models.JSONField()  # one text per eval prompt, in prompt order
    n_tokens = models.PositiveIntegerField()
    seconds = models.FloatField()

    class Meta:
        ordering = ["round_id", "mask"]
        constraints = [models.UniqueConstraint(fields=["round", "mask"], name="coalitiongeneration_unique")]


class RoundTask(models.Model):
    """One unit of a round's work, who did it and how long it took: one owner's fine-tune or one
    model's scoring pass (index -1 = the base model).

    The foreground runner and the Celery tasks go through these rows (stages/units.py): a unit is
    leased (holder host:pid + heartbeat) while it runs and marked done once its result is linked, so a
    message delivered twice does the work once, and a lease whose holder died is taken over."""

    class Stage(models.TextChoices):
        TRAINING = "training", "owner fine-tune"
        SCORING = "scoring", "scoring pass"

    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        RUNNING = "running", "running"
        DONE = "done", "done"
        FAILED = "failed", "failed"

    BASE_INDEX = -1  # the base model's scoring pass

    round = models.ForeignKey(ValuationRound, on_delete=models.CASCADE, related_name="tasks")
    stage = models.CharField(max_length=10, choices=Stage.choices)
    index = models.SmallIntegerField()  # participant index (bit position); -1 = base model
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    worker = models.CharField(max_length=200, blank=True)  # who ran it: a Celery node name or "foreground@host"
    lease = models.CharField(max_length=200, blank=True)  # host:pid holding it while it runs
    attempts = models.PositiveSmallIntegerField(default=0)  # claims: > 1 after a redelivery or a takeover
    cached = models.BooleanField(default=False)  # its model or scores were already there: no work done
    seconds = models.FloatField(null=True, blank=True)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["round_id", "stage", "index"]
        constraints = [models.UniqueConstraint(fields=["round", "stage", "index"], name="roundtask_unique_unit")]

    def __str__(self) -> str:
        what = "base model" if self.index == self.BASE_INDEX else f"owner {self.index}"
        return f"{self.stage} {what} of {self.round_id}"


from .quality_models import DataQualityReport, PairCluster, PairValue  # noqa: E402,F401  (the data-quality stage's rows)
from .screening_models import OwnerScreen, ScreenReport  # noqa: E402,F401  (the semantic screen's rows)
