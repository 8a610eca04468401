from django.urls import path

from . import quality_views, views

app_name = "valuation"

urlpatterns = [
    path("", views.round_list, name="round-list"),
    path("new/", views.round_new, name="round-new"),
    path("<int:round_id>/", views.round_detail, name="round-detail"),
    path("<int:round_id>/approve/", views.round_approve, name="round-approve"),
    path("<int:round_id>/screen/acknowledge/", views.round_screen_acknowledge, name="round-screen-acknowledge"),
    path("<int:round_id>/payouts.csv", views.round_payouts_csv, name="round-payouts-csv"),
    path("<int:round_id>/statement/", views.round_statement, name="round-statement"),
    path("<int:round_id>/statement.csv", views.round_statement_csv, name="round-statement-csv"),
    path("my-payouts/", views.my_payouts, name="my-payouts"),
    path("<int:round_id>/data-quality/", quality_views.round_data_quality, name="round-data-quality"),
    path("<int:round_id>/data-quality/run/", quality_views.round_data_quality_request, name="round-data-quality-run"),
    path("<int:round_id>/curated.jsonl", quality_views.round_curated_jsonl, name="round-curated"),
    path("<int:round_id>/my-pairs/", quality_views.round_my_pairs, name="round-my-pairs"),
    path("<int:round_id>/my-pairs.csv", quality_views.round_my_pairs_csv, name="round-my-pairs-csv"),
]
