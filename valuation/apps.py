from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ValuationConfig(AppConfig):
    name = "valuation"
    verbose_name = "Shapley valuation rounds"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from .db_guards import ensure_installed

        post_migrate.connect(ensure_installed, sender=self, dispatch_uid="valuation-ledger-triggers")
