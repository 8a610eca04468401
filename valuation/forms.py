import json

from django import forms

from config import money
from marketplace.models import EvalSet, Payee
from marketplace.payees import verified_payees_with_data

from .base_models import base_model_find
from .models import BaseModel, Composition, Estimator, PayoutPolicy, Utility


class PayeeChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj):
        return obj.name if obj.status == Payee.Status.VERIFIED else f"{obj.name} ({obj.get_status_display()})"


def _verified_payee_names() -> list[str]:
    return list(verified_payees_with_data().values_list("name", flat=True))


class BaseModelChoiceField(forms.ModelChoiceField):
    """A registered base model, shown with its card; a posted directory of a registered one is that one."""

    def label_from_instance(self, obj):
        return (f"{obj.name} — {obj.n_parameters / 1e6:,.1f}M parameters, "
                f"chat template {'yes' if obj.has_chat_template else 'no'}")

    def to_python(self, value):
        if value in self.empty_values:
            return None
        found = base_model_find(str(value))
        if found is None:
            raise forms.ValidationError(f"no registered base model '{value}'; staff add one with "
                                        "`manage.py import_base_model`", code="invalid_choice")
        return found


def _default_base_model():
    first = BaseModel.objects.first()
    return first.name if first else None


class RoundForm(forms.Form):
    name = forms.CharField(max_length=150)
    # Every payee is listed, so that choosing one that is not verified gets round_create's reason, not a
    # bare "invalid choice".
    owners = PayeeChoiceField(queryset=Payee.objects.order_by("name"), to_field_name="name", required=False,
                              initial=_verified_payee_names,
                              help_text="the players: verified payees (each with all its accounts' data); "
                                        "none selected: every verified payee")
    pool = forms.DecimalField(max_digits=18, decimal_places=4, min_value=0, help_text="reward pool to split")
    currency = forms.ChoiceField(choices=[(code, code) for code in sorted(money.CURRENCIES)], initial="USD",
                                 help_text="ISO 4217; amounts are paid in its minor unit (JPY 0 decimals, KWD 3)")
    eval_set = forms.ModelChoiceField(queryset=EvalSet.objects.all(), to_field_name="name")
    base_model = BaseModelChoiceField(queryset=BaseModel.objects.all(), to_field_name="name",
                                      initial=_default_base_model, empty_label=None,
                                      help_text="a registered base model (manage.py import_base_model)")
    # `auto` preselected: a real base model gets the LoRA preset, the tiny demo model exactly today's config.
    # A POST without the field (scripts) keeps today's default, `tiny`.
    preset = forms.ChoiceField(
        choices=[("auto", "auto (lora from 20M base-model parameters, else tiny)"), ("tiny", "tiny (full fine-tune)"),
                 ("lora", "lora (rank-8 adapter)")], initial="auto", required=False, label="Training preset",
        help_text="the training config; the table below shows each preset and the effective one")
    training = forms.CharField(
        required=False, max_length=2000, label="Training overrides",
        widget=forms.TextInput(attrs={"placeholder": '{"epochs": 2}'}),
        help_text="JSON object of single training options on top of the preset (valuation.engine.dpo.TrainingConfig)")
    utility = forms.ChoiceField(choices=Utility.choices)
    composition = forms.ChoiceField(choices=Composition.choices)
    estimator = forms.ChoiceField(choices=Estimator.choices)
    payout_policy = forms.ChoiceField(
        choices=PayoutPolicy.choices, initial=PayoutPolicy.CLIP, required=False,
        help_text="what the pool is split by (blank: clip); the margin share pays nothing extra to an owner who "
                  "splits its data over several payees (bench/split_gain.py)")
    seed = forms.IntegerField(min_value=0, initial=0)
    budget = forms.IntegerField(min_value=1, required=False,
                                help_text="utility evaluations per Shapley estimate (blank: 2^20, or 128 for reward)")
    # Utility "reward" only: the objectives, the payout objective and how coalitions decode.
    objectives = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2, "placeholder": "helpfulness\nharmlessness"}),
        help_text="reward utility: one objective per line, name=judge (a dotted path to score(prompts, responses) "
                  "or a reward-model directory) or a built-in judge name: helpfulness, harmlessness")
    payout_objective = forms.CharField(
        required=False, max_length=500, widget=forms.TextInput(attrs={"placeholder": "helpfulness=0.5, harmlessness=0.5"}),
        help_text="reward utility: the objective the pool is split by, or a weighted blend (blank: equal blend)")
    prompts = forms.IntegerField(min_value=1, required=False, help_text="reward utility: eval prompts per coalition "
                                                                        "(blank: 128)")
    max_new_tokens = forms.IntegerField(min_value=1, required=False, help_text="reward utility (blank: 40)")
    temperature = forms.FloatField(min_value=1e-6, required=False, help_text="reward utility (blank: 1.0)")
    top_p = forms.FloatField(min_value=1e-6, max_value=1.0, required=False, help_text="reward utility (blank: 1.0)")
    greedy = forms.BooleanField(required=False, help_text="reward utility: decode greedily instead of sampling")

    def clean_training(self) -> dict:
        text = self.cleaned_data.get("training") or ""
        try:
            value = json.loads(text) if text.strip() else {}
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"not JSON: {exc}")
        if not isinstance(value, dict):
            raise forms.ValidationError('must be a JSON object of option: value, e.g. {"epochs": 2}')
        return value

    def reward_options(self) -> dict:
        """The reward-utility options the admin filled in, as round_create's keyword arguments."""
        data = self.cleaned_data
        decoding = {key: data[key] for key in ("max_new_tokens", "temperature", "top_p") if data.get(key) is not None}
        if data.get("greedy"):
            decoding["greedy"] = True
        return {"objectives": data.get("objectives") or None, "payout_objective": data.get("payout_objective") or None,
                "prompts": data.get("prompts"), "decoding": decoding or None}
    data_quality = forms.BooleanField(required=False, label="Data quality",
                                      help_text="after valuing, value every pair (owners see their flagged pairs) "
                                                "and cluster the data (a curated set can be downloaded)")
