"""REST endpoints of a round's data-quality stage (docs/api.md).

Owners read the values of their own pairs and a summary of them; staff read everything,
request the stage for a finished round, list the clusters and download a curated set.
Another owner's round answers 404, and an owner's pair list never holds another owner's pair.
"""
from django.db import transaction
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import IsAdminUser
from rest_framework.response import Response
from rest_framework.views import APIView

from marketplace import selectors as marketplace_selectors

from . import data_quality, quality_selectors, selectors
from .engine.data_quality import OPTIONS
from .models import DataQualityReport, PairCluster


class ReportOutputSerializer(serializers.ModelSerializer):
    round = serializers.IntegerField(source="round_id")

    class Meta:
        model = DataQualityReport
        fields = ["round", "status", "progress", "error", "n_pairs", "n_flagged", "n_chains", "n_fits",
                  "n_embedded", "n_features", "values_seed", "clusters_seed", "full_utility", "empty_utility",
                  "config", "timings", "created_at", "started_at", "finished_at"]


# An owner sees how the stage ran and their own summary, not the round-wide counts of other owners' data.
OWNER_REPORT_FIELDS = ("round", "status", "progress", "n_chains", "values_seed", "full_utility", "empty_utility",
                       "finished_at")


class RoundDataQualityApi(APIView):
    """GET: the round's data-quality report (staff: in full, with a per-owner table; a participating owner: how
    it ran and a summary of their own pairs). POST (staff): run it for a finished round, or again with new options."""

    class DataQualityInputSerializer(serializers.Serializer):
        options = serializers.DictField(required=False, default=dict, help_text="engine options over the defaults, e.g. {\"chain_size\": 32}: "
                                                    + ", ".join(sorted(OPTIONS)))

    def get_permissions(self):
        return [IsAdminUser()] if self.request.method == "POST" else super().get_permissions()

    @extend_schema(responses=ReportOutputSerializer)
    def get(self, request, round_id: int):
        valuation_round = selectors.round_get_for(user=request.user, round_id=round_id)
        report = quality_selectors.report_get(valuation_round=valuation_round)
        if report is None:
            return Response({"detail": "this round has no data-quality report"}, status=status.HTTP_404_NOT_FOUND)
        data = ReportOutputSerializer(report).data
        done = report.status == DataQualityReport.Status.DONE
        if request.user.is_staff:
            data["owners"] = quality_selectors.owner_table(report=report) if done else []
            return Response(data)
        data = {k: data[k] for k in OWNER_REPORT_FIELDS}
        owner = marketplace_selectors.owner_of(user=request.user)
        player = selectors.round_player(valuation_round=valuation_round, owner=owner) if owner else None
        owner = player.owner if player else owner  # an account of a payee: the payee's pairs
        data["mine"] = quality_selectors.owner_summary(report=report, owner=owner) if done else None
        return Response(data)

    @extend_schema(request=DataQualityInputSerializer, responses={202: ReportOutputSerializer})
    def post(self, request, round_id: int):
        serializer = self.DataQualityInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        valuation_round = selectors.round_get(round_id=round_id)
        with transaction.atomic():
            report = data_quality.data_quality_request(valuation_round=valuation_round,
                                                       options=serializer.validated_data["options"] or None,
                                                       requested_by=request.user)
        return Response(ReportOutputSerializer(report).data, status=status.HTTP_202_ACCEPTED)


class PairValueOutputSerializer(serializers.Serializer):
    pair_id = serializers.IntegerField()
    contribution = serializers.IntegerField()
    row = serializers.IntegerField(help_text="row number in the uploaded file")
    prompt = serializers.JSONField(help_text="a string, or a message list for conversational pairs")
    chosen = serializers.JSONField()
    rejected = serializers.JSONField()
    value = serializers.FloatField(help_text="TS-DShapley value: change in held-out classifier accuracy")
    stderr = serializers.FloatField()
    n_chains = serializers.IntegerField()
    agreement = serializers.FloatField(help_text="P(chosen is better) under the classifier on the unflagged pairs")
    rank = serializers.IntegerField(help_text="among the owner's pairs, 1 = lowest value")
    cluster = serializers.IntegerField()
    flagged = serializers.BooleanField()
    reason = serializers.CharField(help_text="'' | reversed | harmful")
    reason_text = serializers.CharField()


class RoundPairValuesApi(APIView):
    """The value of every pair, lowest first per owner. An owner: their own pairs only. Staff: everyone's
    (?owner=username for one). ?flagged=true: the flagged pairs only."""

    @extend_schema(parameters=[OpenApiParameter("flagged", bool), OpenApiParameter("owner", str)],
                   responses=PairValueOutputSerializer(many=True))
    def get(self, request, round_id: int):
        valuation_round = selectors.round_get_for(user=request.user, round_id=round_id)
        report = quality_selectors.report_get_done(valuation_round=valuation_round)
        owner = None
        if request.user.is_staff and request.query_params.get("owner"):
            owner = marketplace_selectors.owner_get(username=request.query_params["owner"])
        flagged = {"true": True, "1": True, "false": False, "0": False}.get(
            request.query_params.get("flagged", "").lower())
        rows = quality_selectors.pair_values_for(report=report, user=request.user, owner=owner, flagged=flagged)
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(rows, request, view=self)
        records = [quality_selectors.pair_value_record(row) for row in page]
        return paginator.get_paginated_response(PairValueOutputSerializer(records, many=True).data)


class ClusterOutputSerializer(serializers.ModelSerializer):
    proxy = serializers.IntegerField(source="proxy_id", help_text="the pair nearest the centroid")

    class Meta:
        model = PairCluster
        fields = ["index", "size", "value", "stderr", "proxy", "n_owners", "n_flagged", "mean_pair_value", "examples"]


class RoundClustersApi(APIView):
    """Staff: the SHED clusters, highest proxy value first, with example prompts."""

    permission_classes = [IsAdminUser]

    @extend_schema(responses=ClusterOutputSerializer(many=True))
    def get(self, request, round_id: int):
        report = quality_selectors.report_get_done(valuation_round=selectors.round_get(round_id=round_id))
        return Response({"round": round_id, "clusters": ClusterOutputSerializer(
            quality_selectors.clusters(report=report), many=True).data})


class RoundCuratedApi(APIView):
    """Staff: a curated set of `size` pairs as JSONL in the upload format (QOCS or QWCS)."""

    permission_classes = [IsAdminUser]

    class CuratedInputSerializer(serializers.Serializer):
        size = serializers.IntegerField(min_value=1)
        method = serializers.ChoiceField(choices=["qocs", "qwcs"])
        tau = serializers.FloatField(required=False, help_text="qwcs temperature (default: the report's)")
        seed = serializers.IntegerField(min_value=0, default=0)

    @extend_schema(parameters=[CuratedInputSerializer], responses={(200, "application/jsonl"): str})
    def get(self, request, round_id: int):
        serializer = self.CuratedInputSerializer(data=request.query_params)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        valuation_round = selectors.round_get(round_id=round_id)
        report = quality_selectors.report_get_done(valuation_round=valuation_round)
        pairs = quality_selectors.curated_pairs(report=report, size=data["size"], method=data["method"],
                                                tau=data.get("tau"), seed=data["seed"])
        return curated_response(valuation_round, pairs, data["method"])


def curated_response(valuation_round, pairs, method: str) -> HttpResponse:
    response = HttpResponse(quality_selectors.curated_jsonl(pairs), content_type="application/jsonl; charset=utf-8")
    response["Content-Disposition"] = (f'attachment; filename="round-{valuation_round.pk}-curated-{method}-'
                                       f'{len(pairs)}.jsonl"')
    return response
