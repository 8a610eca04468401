"""REST endpoints of valuation rounds (paths fixed by docs/design.md §5)."""
from decimal import Decimal

from django.db import transaction
from django.http import Http404
from django.template.loader import render_to_string
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import IsAdminUser
from rest_framework.response import Response
from rest_framework.views import APIView

from marketplace.models import EvalSet

from . import base_models, estimate_selectors, fidelity, selectors, services, training_selectors
from .models import (BaseModel, CoalitionGeneration, Composition, Estimator, FidelityReport, OwnerValue, Payout, PayoutPolicy,
                     RoundExclusion, RoundOwner, RoundTask, Utility, ValuationRound)


STAFF_ONLY_CONFIG = frozenset({"screening", "excluded_owners", "eval_lengths"})


class RoundOutputSerializer(serializers.ModelSerializer):
    """Staff (context `staff`) read the round's recorded error in full; anyone else a plain line."""

    eval_set = serializers.CharField(source="eval_set.name")
    base_model_name = serializers.CharField(source="base_model.name", default=None, read_only=True)
    n_owners = serializers.IntegerField(source="participants.count")
    error = serializers.SerializerMethodField()

    def get_error(self, valuation_round) -> str:
        return selectors.error_for(valuation_round.error, staff=bool(self.context.get("staff")))

    class Meta:
        model = ValuationRound
        fields = ["id", "name", "status", "progress", "timings", "error", "eval_set", "eval_set_hash",
                  "base_model_name", "base_model_path", "base_model_hash", "utility", "composition", "payout_policy", "estimator",
                  "estimator_used", "n_evaluations", "stopped_because", "misallocation_bound",
                  "seed", "config", "pool", "currency", "decimals", "n_owners", "payout_note", "utilities_hash",
                  "created_at",
                  "started_at", "finished_at", "approved_at", "data_quality"]

    def to_representation(self, instance):
        data = super().to_representation(instance)
        if not self.context.get("staff"):
            # Kept from owners: the screen's thresholds (how far to reword), how many other owners were left
            # out, and how the eval set fares under the length cut.
            data["config"] = {k: v for k, v in (data.get("config") or {}).items() if k not in STAFF_ONLY_CONFIG}
        return data


class RoundInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=150)
    pool = serializers.DecimalField(max_digits=18, decimal_places=4, min_value=0)
    currency = serializers.CharField(max_length=3, default="USD",
                                     help_text="ISO 4217 code; the round pays in its minor unit (JPY 0 decimals)")
    eval_set = serializers.SlugRelatedField(slug_field="name", queryset=EvalSet.objects.all())
    base_model = serializers.CharField(
        max_length=500, help_text="a registered base model's name (GET /api/base-models/); for older clients, the "
                                  "directory of a registered one. Unregistered directories are refused.")
    utility = serializers.ChoiceField(choices=Utility.choices, default=Utility.PREFERENCE_ACCURACY)
    composition = serializers.ChoiceField(choices=Composition.choices, default=Composition.SUM)
    estimator = serializers.ChoiceField(choices=Estimator.choices, default=Estimator.AUTO)
    payout_policy = serializers.ChoiceField(
        choices=PayoutPolicy.choices, default=PayoutPolicy.CLIP,
        help_text="what the pool is split by: 'clip' (Shapley value) or 'margin_share' (split-proof)")
    seed = serializers.IntegerField(min_value=0, default=0)
    beta = serializers.FloatField(min_value=1e-6, required=False)
    preset = serializers.CharField(required=False, max_length=16,
                                   help_text="training preset: tiny, lora, or auto (the default: lora for a base "
                                             "model of 20M parameters or more, else tiny)")
    training = serializers.DictField(required=False, default=dict,
                                     help_text="training options overriding the preset's, key by key")
    owners = serializers.ListField(
        child=serializers.CharField(), required=False,
        help_text="the players: verified payees, by name or by one of their accounts' usernames (default: every "
                  "verified payee with accepted data); an unverified, suspended or inactive one is refused")
    budget = serializers.IntegerField(min_value=1, required=False, help_text="utility evaluations for the estimator")
    target = serializers.FloatField(min_value=1e-6, max_value=0.999999, required=False,
                                    help_text="stop sampling when at most this share of the pool may be misallocated")
    objectives = serializers.ListField(
        child=serializers.JSONField(), required=False,
        help_text="utility 'reward' only: objectives as {\"name\", \"judge\"} or \"name=judge\"; a judge is a dotted "
                  "path to score(prompts, responses), a reward-model directory, or helpfulness / harmlessness")
    payout_objective = serializers.JSONField(
        required=False, help_text="utility 'reward': an objective name or weights {name: w} (default: equal blend)")
    decoding = serializers.DictField(
        required=False, help_text="utility 'reward': max_new_tokens, temperature, top_p, greedy, seed, batch_size, "
                                  "max_prompt_tokens, max_batch_rows")
    prompts = serializers.IntegerField(min_value=1, required=False,
                                       help_text="utility 'reward': eval prompts decoded per coalition (default 128)")
    data_quality = serializers.BooleanField(default=False, help_text="after valuing, value every pair and cluster "
                                            "the data (GET /api/rounds/{id}/data-quality/)")
    data_quality_options = serializers.DictField(required=False, help_text="options of the data-quality stage, "
                                                 "e.g. {\"chain_size\": 32}; implies data_quality")


class RoundListCreateApi(APIView):
    """GET rounds (staff: all; owners: those they took part in). POST (staff): create and start a round."""

    def get_permissions(self):
        return [IsAdminUser()] if self.request.method == "POST" else super().get_permissions()

    @extend_schema(responses=RoundOutputSerializer(many=True))
    def get(self, request):
        rounds = selectors.round_list_for(user=request.user)
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(rounds, request, view=self)
        return paginator.get_paginated_response(
            RoundOutputSerializer(page, many=True, context={"staff": request.user.is_staff}).data)

    @extend_schema(request=RoundInputSerializer, responses={201: RoundOutputSerializer})
    def post(self, request):
        serializer = RoundInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        base_model = base_models.base_model_get(data["base_model"])
        with transaction.atomic():
            valuation_round = services.round_create(
                name=data["name"], pool=data["pool"], currency=data["currency"], eval_set=data["eval_set"],
                base_model=base_model, utility=data["utility"], composition=data["composition"],
                estimator=data["estimator"], seed=data["seed"], beta=data.get("beta"), training=data["training"],
                preset=data.get("preset"), owners=data.get("owners"), budget=data.get("budget"),
                target=data.get("target"),
                objectives=data.get("objectives"), payout_objective=data.get("payout_objective"),
                decoding=data.get("decoding"), prompts=data.get("prompts"),
                data_quality=data["data_quality"], data_quality_options=data.get("data_quality_options"),
                payout_policy=data["payout_policy"], created_by=request.user)
            valuation_round = services.round_queue(valuation_round=valuation_round)
        return Response(RoundOutputSerializer(valuation_round, context={"staff": True}).data,
                        status=status.HTTP_201_CREATED)


class BaseModelOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = BaseModel
        fields = ["name", "architecture", "n_parameters", "context_length", "has_chat_template", "dtype",
                  "content_hash", "source_kind", "source", "created_at"]


class BaseModelListApi(APIView):
    """GET (staff): the registered base models a round can be created on."""

    permission_classes = [IsAdminUser]

    @extend_schema(responses=BaseModelOutputSerializer(many=True))
    def get(self, request):
        return Response(BaseModelOutputSerializer(BaseModel.objects.all(), many=True).data)


class RoundUnitOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = RoundTask
        fields = ["stage", "index", "status", "worker", "attempts", "cached", "seconds", "started_at", "finished_at"]


class ParticipantLengthSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.name")

    class Meta:
        model = RoundOwner
        fields = ["owner", "n_pairs", "n_usable", "n_truncated", "prompt_format"]


class ExclusionOutputSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.name")

    class Meta:
        model = RoundExclusion
        fields = ["owner", "n_pairs", "n_dropped", "reason"]


class LengthCheckOutputSerializer(serializers.Serializer):
    max_length = serializers.IntegerField(allow_null=True)
    chat_template = serializers.BooleanField()  # conversations reach the base model through its chat template
    owners = ParticipantLengthSerializer(many=True)
    excluded = ExclusionOutputSerializer(many=True)


class TrainingOutputSerializer(serializers.Serializer):
    owner = serializers.CharField()
    index = serializers.IntegerField()
    steps = serializers.ListField(child=serializers.DictField(), help_text=(
        "TRL's per-step log: step, epoch, loss, rewards/accuracies, rewards/margins, rewards/chosen, "
        "rewards/rejected, learning_rate, grad_norm"))
    every = serializers.IntegerField(help_text="every k-th step is kept (k > 1 only past 500 steps)")
    tokens = serializers.IntegerField(allow_null=True, help_text="tokens trained (all epochs)")
    seconds = serializers.FloatField(allow_null=True)
    reused = serializers.BooleanField(help_text="the model came from the cache, trained for an earlier round")
    solo = serializers.FloatField(allow_null=True, help_text="the owner's solo utility v({i})")
    empty = serializers.FloatField(allow_null=True, help_text="v(∅): the base model's utility")


class EstimateOutputSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["before", "running"])
    training = serializers.FloatField(allow_null=True, help_text="seconds; null: no measurement yet")
    scoring = serializers.FloatField(allow_null=True, help_text="seconds; null: no measurement yet")
    total = serializers.FloatField(allow_null=True, help_text="training + scoring seconds (valuing not included)")
    stage_left = serializers.FloatField(allow_null=True, help_text="seconds left of the running stage")
    remaining = serializers.FloatField(allow_null=True, help_text="seconds left of training and scoring")
    tokens = serializers.IntegerField(allow_null=True, help_text="tokens still to train (all epochs)")
    training_source = serializers.CharField()
    scoring_source = serializers.CharField()
    html = serializers.CharField(help_text="the round page's sentence (the page swaps it in as it polls)")


class RoundDetailOutputSerializer(RoundOutputSerializer):
    """The round plus its units (one fine-tune or scoring pass each; index -1 = the base model) and who ran
    them, for staff; owners see the round without them. `length_check`: pairs cut to the training length and
    the prompt format (text, chat template, flattened conversations) per owner, and owners left out of the
    round with the reason (an owner sees only their own)."""

    units = serializers.SerializerMethodField()
    length_check = serializers.SerializerMethodField()
    training = serializers.SerializerMethodField()
    estimate = serializers.SerializerMethodField()

    class Meta(RoundOutputSerializer.Meta):
        fields = RoundOutputSerializer.Meta.fields + ["units", "length_check", "training", "estimate"]

    @extend_schema_field(EstimateOutputSerializer(allow_null=True))
    def get_estimate(self, valuation_round) -> dict | None:
        """Staff: the time estimate of a round not yet finished (null once it is, and for owners)."""
        if not self.context.get("staff"):
            return None
        estimate = estimate_selectors.round_estimate(valuation_round=valuation_round)
        if estimate is None:
            return None
        html = render_to_string("valuation/_round_estimate.html", {"estimate": estimate, "round": valuation_round})
        return EstimateOutputSerializer({**estimate, "html": html}).data

    @extend_schema_field(TrainingOutputSerializer(many=True))
    def get_training(self, valuation_round) -> list:
        """Each owner's fine-tune log and solo utility v({i}): staff every owner's, an owner their own."""
        user = self.context.get("user")
        owners = selectors.round_participants(valuation_round=valuation_round)
        if user is None or not user.is_authenticated:
            return []
        if not user.is_staff:
            owners = owners.filter(pk__in=selectors.players_of(user=user).values("pk"))
        return TrainingOutputSerializer(training_selectors.training_rows(valuation_round=valuation_round,
                                                                         participants=list(owners)), many=True).data

    @extend_schema_field(LengthCheckOutputSerializer)
    def get_length_check(self, valuation_round) -> dict:
        user = self.context.get("user")
        owners = selectors.round_participants(valuation_round=valuation_round)
        excluded = selectors.round_exclusions(valuation_round=valuation_round)
        if user is None or not user.is_authenticated:  # no user: nobody's rows
            owners, excluded = owners.none(), excluded.none()
        elif not user.is_staff:  # an owner: their own (their payee's) rows
            owners = owners.filter(pk__in=selectors.players_of(user=user).values("pk"))
            excluded = excluded.filter(selectors.excluded_as(user=user))
        return LengthCheckOutputSerializer({
            "max_length": (valuation_round.config.get("training") or {}).get("max_length"), "owners": owners,
            "chat_template": bool(valuation_round.config.get("chat_template")),
            "excluded": excluded}).data

    @extend_schema_field(RoundUnitOutputSerializer(many=True))
    def get_units(self, valuation_round) -> list:
        if not self.context.get("staff"):
            return []
        return RoundUnitOutputSerializer(valuation_round.tasks.order_by("stage", "index"), many=True).data


class RoundDetailApi(APIView):
    @extend_schema(responses=RoundDetailOutputSerializer)
    def get(self, request, round_id: int):
        valuation_round = selectors.round_get_for(user=request.user, round_id=round_id)
        return Response(RoundDetailOutputSerializer(valuation_round, context={"staff": request.user.is_staff,
                                                                              "user": request.user}).data)


class ValueOutputSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.user.username")

    class Meta:
        model = OwnerValue
        fields = ["owner", "shapley", "stderr", "ci_low", "ci_high", "banzhaf", "leave_one_out"]


class RoundValuesApi(APIView):
    """Staff: every owner's value. An owner: their own value only."""

    @extend_schema(responses=ValueOutputSerializer(many=True))
    def get(self, request, round_id: int):
        valuation_round = selectors.round_get_for(user=request.user, round_id=round_id)
        values = selectors.round_values(valuation_round=valuation_round, user=request.user)
        body = {"round": valuation_round.pk, "status": valuation_round.status,
                "estimator": valuation_round.estimator_used, "utility": valuation_round.utility,
                "values": ValueOutputSerializer(values, many=True).data}
        if valuation_round.config.get("reward"):  # values per objective (the caller's own row for an owner)
            table = selectors.round_objective_values(valuation_round=valuation_round, user=request.user)
            body["payout_objective"] = table["payout"]
            body["objectives"] = {name: [dict(row["values"][name], owner=row["username"]) for row in table["rows"]
                                         if name in row["values"]] for name in table["objectives"]}
        return Response(body)


class PayoutOutputSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.user.username")
    amount = serializers.SerializerMethodField()

    def get_amount(self, payout) -> str:
        """In the currency's minor unit, as paid (the column stores 4 places for any currency)."""
        return str(payout.amount.quantize(payout.round.minor_unit))

    class Meta:
        model = Payout
        fields = ["owner", "amount", "share", "currency", "status", "approved_at"]


class RoundPayoutsApi(APIView):
    """Staff: every payout. An owner: their own payout plus the round totals."""

    @extend_schema(responses=PayoutOutputSerializer(many=True))
    def get(self, request, round_id: int):
        valuation_round = selectors.round_get_for(user=request.user, round_id=round_id)
        payouts = selectors.round_payouts(valuation_round=valuation_round, user=request.user)
        totals = selectors.round_payout_totals(valuation_round=valuation_round)
        totals = dict(totals, pool=str(totals["pool"]), paid=str(totals["paid"]))
        return Response({"round": valuation_round.pk, "totals": totals,
                         "note": valuation_round.payout_note,
                         "payouts": PayoutOutputSerializer(payouts, many=True).data})


class RoundApproveApi(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(request=None, responses={200: dict})
    def post(self, request, round_id: int):
        valuation_round = selectors.round_get(round_id=round_id)
        count = services.payout_approve(valuation_round=valuation_round, approved_by=request.user)
        return Response({"round": valuation_round.pk, "approved": count})


class FidelityReportOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = FidelityReport
        fields = ["id", "round", "status", "mode", "n_coalitions", "seed", "exhaustive", "progress", "error",
                  "trainings", "headline", "correlations", "shapley", "coalitions", "created_at", "started_at",
                  "finished_at"]


# An owner sees how far the round's numbers can be trusted, not other owners' values or coalitions.
OWNER_FIDELITY_FIELDS = ("id", "round", "status", "mode", "n_coalitions", "exhaustive", "correlations",
                         "finished_at")


class RoundVerifyApi(APIView):
    """Staff: queue a fidelity check of a finished round (coalition models trained for real)."""

    permission_classes = [IsAdminUser]

    class InputSerializer(serializers.Serializer):
        mode = serializers.ChoiceField(choices=FidelityReport.Mode.choices, default=FidelityReport.Mode.BOTH)
        coalitions = serializers.IntegerField(min_value=1, required=False,
                                              help_text="coalitions to compare (default 32: all up to 5 owners)")
        seed = serializers.IntegerField(min_value=0, default=0, help_text="seed of the stratified coalition sample")

    @extend_schema(request=InputSerializer, responses={202: FidelityReportOutputSerializer})
    def post(self, request, round_id: int):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        valuation_round = selectors.round_get(round_id=round_id)
        with transaction.atomic():
            report = fidelity.fidelity_request(valuation_round=valuation_round, mode=data["mode"],
                                               coalitions=data.get("coalitions"), seed=data["seed"],
                                               requested_by=request.user)
        return Response(FidelityReportOutputSerializer(report).data, status=status.HTTP_202_ACCEPTED)


class RoundFidelityApi(APIView):
    """The round's latest fidelity check (staff: in full; a participating owner: the correlations)."""

    @extend_schema(responses=FidelityReportOutputSerializer)
    def get(self, request, round_id: int):
        valuation_round = selectors.round_get_for(user=request.user, round_id=round_id)
        reports = valuation_round.fidelity_reports.order_by("-created_at", "-id")
        report = reports.first() if request.user.is_staff else reports.filter(status="done").first()
        if report is None:
            raise Http404("this round has no fidelity check yet")
        data = FidelityReportOutputSerializer(report).data
        if not request.user.is_staff:
            data = {k: data[k] for k in OWNER_FIDELITY_FIELDS}
            # which owner's share moved most names another owner: staff only
            data["correlations"] = [{k: v for k, v in row.items() if k != "max_payout_diff_owner"}
                                    for row in data["correlations"]]
        return Response(data)


class GenerationOutputSerializer(serializers.ModelSerializer):
    members = serializers.SerializerMethodField()

    def get_members(self, generation) -> list[str]:
        return [name for index, name in self.context["names"].items() if generation.mask >> index & 1]

    class Meta:
        model = CoalitionGeneration
        fields = ["mask", "size", "members", "scores", "n_tokens", "seconds", "responses"]


class RoundGenerationsApi(APIView):
    """Staff: what every decoded coalition of a reward round generated, with its utility per objective
    (responses in eval-prompt order; `prompts` lists those prompts). Paginated by coalition."""

    permission_classes = [IsAdminUser]

    @extend_schema(responses=GenerationOutputSerializer(many=True))
    def get(self, request, round_id: int):
        valuation_round = selectors.round_get(round_id=round_id)
        if not valuation_round.config.get("reward"):
            raise Http404("only a reward round generates")
        names = {p.index: p.owner.user.username for p in selectors.round_participants(valuation_round=valuation_round)}
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(valuation_round.generations.order_by("mask"), request, view=self)
        response = paginator.get_paginated_response(
            GenerationOutputSerializer(page, many=True, context={"names": names}).data)
        response.data["prompts"] = selectors.round_prompts(valuation_round=valuation_round)
        return response
