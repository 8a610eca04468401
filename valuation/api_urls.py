from django.urls import path

from . import apis, ledger_apis, quality_apis, screening_apis

urlpatterns = [
    path("base-models/", apis.BaseModelListApi.as_view(), name="base-models"),
    path("rounds/", apis.RoundListCreateApi.as_view(), name="rounds"),
    path("rounds/<int:round_id>/", apis.RoundDetailApi.as_view(), name="round"),
    path("rounds/<int:round_id>/values/", apis.RoundValuesApi.as_view(), name="round-values"),
    path("rounds/<int:round_id>/payouts/", apis.RoundPayoutsApi.as_view(), name="round-payouts"),
    path("rounds/<int:round_id>/approve/", apis.RoundApproveApi.as_view(), name="round-approve"),
    path("rounds/<int:round_id>/screen/", screening_apis.RoundScreenApi.as_view(), name="round-screen"),
    path("rounds/<int:round_id>/screen/acknowledge/", screening_apis.RoundScreenAcknowledgeApi.as_view(),
         name="round-screen-acknowledge"),
    path("rounds/<int:round_id>/ledger/", ledger_apis.RoundLedgerApi.as_view(), name="round-ledger"),
    path("rounds/<int:round_id>/corrections/", ledger_apis.PayoutCorrectApi.as_view(), name="round-corrections"),
    path("rounds/<int:round_id>/verify/", apis.RoundVerifyApi.as_view(), name="round-verify"),
    path("rounds/<int:round_id>/generations/", apis.RoundGenerationsApi.as_view(), name="round-generations"),
    path("rounds/<int:round_id>/fidelity/", apis.RoundFidelityApi.as_view(), name="round-fidelity"),
    path("rounds/<int:round_id>/data-quality/", quality_apis.RoundDataQualityApi.as_view(), name="round-data-quality"),
    path("rounds/<int:round_id>/pair-values/", quality_apis.RoundPairValuesApi.as_view(), name="round-pair-values"),
    path("rounds/<int:round_id>/clusters/", quality_apis.RoundClustersApi.as_view(), name="round-clusters"),
    path("rounds/<int:round_id>/curated/", quality_apis.RoundCuratedApi.as_view(), name="round-curated"),
]
