from django.apps import AppConfig


class ValuationConfig(AppConfig):
    name = "valuation"
    verbose_name = "Shapley valuation rounds"
    default_auto_field = "django.db.models.BigAutoField"
