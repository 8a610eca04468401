"""REST endpoints of the payout ledger: read it, correct an approved round (valuation/ledger.py)."""
from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import IsAdminUser
from rest_framework.response import Response
from rest_framework.views import APIView

from . import ledger, selectors
from .apis import PayoutOutputSerializer
from .models import Payout


class LedgerEntryOutputSerializer(PayoutOutputSerializer):
    class Meta:
        model = Payout
        # No row ids: an owner must not learn how many entries other owners have.
        fields = ["owner", "kind", "amount", "share", "currency", "status", "reason", "created_at", "approved_at"]


class RoundLedgerApi(APIView):
    """Every ledger entry of the round (staff: all owners; an owner: their own), in the order written."""

    @extend_schema(responses=LedgerEntryOutputSerializer(many=True))
    def get(self, request, round_id: int):
        valuation_round = selectors.round_get_for(user=request.user, round_id=round_id)
        entries = selectors.round_ledger(valuation_round=valuation_round, user=request.user)
        return Response({"round": valuation_round.pk,
                         "totals": _totals(selectors.round_payout_totals(valuation_round=valuation_round)),
                         "entries": LedgerEntryOutputSerializer(entries, many=True).data})


class PayoutCorrectApi(APIView):
    """Staff: correct an approved round's payouts. Each changed owner gets a reversal of their payout and
    a new approved payout; the round's total must not change."""

    permission_classes = [IsAdminUser]

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "PayoutCorrectInput"

        amounts = serializers.DictField(child=serializers.CharField(max_length=40), allow_empty=False,
                                        help_text='username → corrected amount, e.g. {"alice": "310.00", "bob": "340.00"}')
        reason = serializers.CharField(max_length=2000)

    @extend_schema(request=InputSerializer, responses={201: LedgerEntryOutputSerializer(many=True)})
    def post(self, request, round_id: int):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        valuation_round = selectors.round_get(round_id=round_id)
        with transaction.atomic():
            new = ledger.payout_correct(valuation_round=valuation_round, amounts=serializer.validated_data["amounts"],
                                        reason=serializer.validated_data["reason"], corrected_by=request.user)
        return Response({"round": valuation_round.pk,
                         "totals": _totals(selectors.round_payout_totals(valuation_round=valuation_round)),
                         "payouts": LedgerEntryOutputSerializer(new, many=True).data}, status=status.HTTP_201_CREATED)


def _totals(totals: dict) -> dict:
    return dict(totals, pool=str(totals["pool"]), paid=str(totals["paid"]))
