"""REST endpoints of a round's semantic screen (docs/api.md): staff only — the per-owner table names other
owners and says how close an owner's data comes to the eval set, so an owner gets 403 like any staff route."""
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError as DrfValidationError
from rest_framework.permissions import IsAdminUser
from rest_framework.response import Response
from rest_framework.views import APIView

from . import screening, selectors
from .models import OwnerScreen, ScreenReport


class OwnerScreenOutputSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.name")
    owner_id = serializers.IntegerField()
    acknowledged_by = serializers.CharField(source="acknowledged_by.username", default=None)

    class Meta:
        model = OwnerScreen
        fields = ["owner", "owner_id", "n_pairs", "n_eval", "n_owner", "share_eval", "share_owner", "max_eval",
                  "max_owner", "matched_owners", "flagged", "acknowledged_by", "acknowledged_at",
                  "acknowledgement_note"]


class ScreenReportOutputSerializer(serializers.ModelSerializer):
    round = serializers.IntegerField(source="round_id")
    acknowledged_by = serializers.CharField(source="acknowledged_by.username", default=None)
    owners = serializers.SerializerMethodField()
    approval_blockers = serializers.SerializerMethodField()

    class Meta:
        model = ScreenReport
        fields = ["round", "status", "config", "error", "n_pairs", "n_eval", "n_embedded", "seconds",
                  "acknowledged_by", "acknowledged_at", "acknowledgement_note", "created_at", "finished_at",
                  "approval_blockers", "owners"]

    def get_owners(self, report) -> list:
        return OwnerScreenOutputSerializer(screening.screen_rows(report), many=True).data

    def get_approval_blockers(self, report) -> list[str]:
        return screening.approval_blockers(report.round)


def _report(round_id: int) -> ScreenReport:
    from django.http import Http404

    report = screening.screen_report(selectors.round_get(round_id=round_id))
    if report is None:
        raise Http404("this round has no semantic screen")
    return report


class RoundScreenApi(APIView):
    """Staff: the round's semantic screen, one row per owner (flagged owners first)."""

    permission_classes = [IsAdminUser]

    @extend_schema(responses=ScreenReportOutputSerializer)
    def get(self, request, round_id: int):
        return Response(ScreenReportOutputSerializer(_report(round_id)).data)


class RoundScreenAcknowledgeApi(APIView):
    """Staff: acknowledge a flagged owner (`owner_id`), or a failed screen (no `owner_id`), with a note."""

    permission_classes = [IsAdminUser]

    class AcknowledgeInputSerializer(serializers.Serializer):
        owner_id = serializers.IntegerField(required=False, help_text="the flagged owner; omit for a failed screen")
        note = serializers.CharField(max_length=screening.NOTE_MAX, help_text="why the payouts may still be approved")

    @extend_schema(request=AcknowledgeInputSerializer, responses=ScreenReportOutputSerializer)
    def post(self, request, round_id: int):
        serializer = self.AcknowledgeInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        report = _report(round_id)
        owner = None
        if "owner_id" in data:
            row = report.owners.select_related("owner__user").filter(owner_id=data["owner_id"]).first()
            if row is None:
                raise DrfValidationError({"owner_id": ["that owner is not in this round's screen"]})
            owner = row.owner
        screening.screen_acknowledge(valuation_round=report.round, owner=owner, acknowledged_by=request.user,
                                     note=data["note"])
        report.refresh_from_db()
        return Response(ScreenReportOutputSerializer(report).data)
