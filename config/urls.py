"""URL routing: web pages per app, the REST API under /api/, Django admin."""
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from config.api import TokenObtainApi
from config.ratelimit import login_rate_limited

class ApiDocsView(SpectacularSwaggerView):
    """Swagger UI. GET only: DRF's OPTIONS metadata has no HTML template, so it would answer 500."""

    http_method_names = ["get", "head"]


api_patterns = [
    path("auth/token/", TokenObtainApi.as_view(), name="token"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", ApiDocsView.as_view(url_name="api:schema"), name="docs"),
    path("", include("marketplace.api_urls")),
    path("", include("valuation.api_urls")),
]

urlpatterns = [
    # The admin's sign-in, with failed attempts counted like the site's (config/ratelimit.py).
    path("admin/login/", login_rate_limited(admin.site.login), name="admin-login"),
    path("admin/", admin.site.urls),
    path("api/", include((api_patterns, "api"))),
    path("rounds/", include("valuation.urls")),
    path("", include("marketplace.urls")),
]
