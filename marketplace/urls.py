from django.contrib.auth import views as auth_views
from django.urls import path

from config.ratelimit import login_rate_limited, signup_rate_limited

from . import views

app_name = "marketplace"

urlpatterns = [
    path("", views.home, name="home"),
    path("signup/", signup_rate_limited(views.signup), name="signup"),
    path("login/", login_rate_limited(auth_views.LoginView.as_view(template_name="marketplace/login.html")),
         name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("contributions/", views.contribution_list, name="contributions"),
    path("contributions/<int:contribution_id>/", views.contribution_detail, name="contribution-detail"),
    path("contributions/<int:contribution_id>/download/", views.contribution_download, name="contribution-download"),
    path("contributions/<int:contribution_id>/delete/", views.contribution_delete, name="contribution-delete"),
    path("eval-sets/", views.eval_set_list, name="eval-sets"),
    path("overview/", views.overview, name="overview"),
]
