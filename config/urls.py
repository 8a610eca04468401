"""URL routing: web pages per app, the REST API under /api/, Django admin."""
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from config.api import TokenObtainApi

api_patterns = [
    path("auth/token/", TokenObtainApi.as_view(), name="token"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
    path("", include("marketplace.api_urls")),
    path("", include("valuation.api_urls")),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include((api_patterns, "api"))),
    path("rounds/", include("valuation.urls")),
    path("", include("marketplace.urls")),
]
