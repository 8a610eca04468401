from django import forms
from django.conf import settings

from marketplace.models import EvalSet

from .models import Composition, Estimator, Utility


class RoundForm(forms.Form):
    name = forms.CharField(max_length=150)
    pool = forms.DecimalField(max_digits=18, decimal_places=2, min_value=0, help_text="reward pool to split")
    currency = forms.CharField(max_length=3, initial="USD")
    eval_set = forms.ModelChoiceField(queryset=EvalSet.objects.all(), to_field_name="name")
    base_model = forms.CharField(max_length=500, help_text="local Hugging Face causal-LM directory",
                                 initial=lambda: str(settings.ARTIFACTS_DIR / "base_model"))
    utility = forms.ChoiceField(choices=Utility.choices)
    composition = forms.ChoiceField(choices=Composition.choices)
    estimator = forms.ChoiceField(choices=Estimator.choices)
    seed = forms.IntegerField(min_value=0, initial=0)
    data_quality = forms.BooleanField(required=False, label="Data quality",
                                      help_text="after valuing, value every pair (owners see their flagged pairs) "
                                                "and cluster the data (a curated set can be downloaded)")
