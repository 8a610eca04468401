from django.urls import path

from . import apis

urlpatterns = [
    path("contributions/", apis.ContributionListCreateApi.as_view(), name="contributions"),
    path("contributions/<int:contribution_id>/", apis.ContributionDetailApi.as_view(), name="contribution"),
    path("contributions/<int:contribution_id>/download/", apis.ContributionDownloadApi.as_view(),
         name="contribution-download"),
    path("eval-sets/", apis.EvalSetListCreateApi.as_view(), name="eval-sets"),
]
