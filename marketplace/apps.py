from django.apps import AppConfig


class MarketplaceConfig(AppConfig):
    name = "marketplace"
    verbose_name = "Preference-data marketplace"
    default_auto_field = "django.db.models.BigAutoField"
