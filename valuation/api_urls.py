from django.urls import path

from . import apis, ledger_apis

urlpatterns = [
    path("rounds/", apis.RoundListCreateApi.as_view(), name="rounds"),
    path("rounds/<int:round_id>/", apis.RoundDetailApi.as_view(), name="round"),
    path("rounds/<int:round_id>/values/", apis.RoundValuesApi.as_view(), name="round-values"),
    path("rounds/<int:round_id>/payouts/", apis.RoundPayoutsApi.as_view(), name="round-payouts"),
    path("rounds/<int:round_id>/approve/", apis.RoundApproveApi.as_view(), name="round-approve"),
    path("rounds/<int:round_id>/ledger/", ledger_apis.RoundLedgerApi.as_view(), name="round-ledger"),
    path("rounds/<int:round_id>/corrections/", ledger_apis.PayoutCorrectApi.as_view(), name="round-corrections"),
    path("rounds/<int:round_id>/verify/", apis.RoundVerifyApi.as_view(), name="round-verify"),
    path("rounds/<int:round_id>/fidelity/", apis.RoundFidelityApi.as_view(), name="round-fidelity"),
]
