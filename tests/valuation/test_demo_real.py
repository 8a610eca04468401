"""`make demo-real` up to its round: the SmolLM2 import from the installed package, the houseplant owners and
eval set, and a round request that the service accepts on that model. The LoRA round itself is not run here
(4 fine-tunes and 5 scoring passes on SmolLM2, ~10 minutes): tests/valuation/test_real_model_round.py runs
one end to end on fewer pairs, and docs/real-models.md quotes a full `make demo-real`."""
import io

import pytest
from django.core.management import call_command

from marketplace.management.commands import demo_real
from marketplace.models import Contribution, EvalSet
from valuation import services
from valuation.engine import synthetic_chat
from valuation.models import BaseModel
from tests.conftest import smollm2_gguf_or_skip

pytestmark = [pytest.mark.slow, pytest.mark.django_db]


def test_demo_real_sets_up_the_houseplant_market_on_smollm2_and_asks_for_a_lora_round(settings, tmp_path,
                                                                                       monkeypatch):
    smollm2_gguf_or_skip()
    settings.VAR_DIR = tmp_path / "var"
    settings.ARTIFACTS_DIR = tmp_path / "var" / "artifacts"
    asked = []
    real_call_command = demo_real.call_command

    def call_command_but_run_round(command, *args, **kwargs):
        if command == "run_round":
            asked.append((args, kwargs))
            return None
        return real_call_command(command, *args, **kwargs)

    monkeypatch.setattr(demo_real, "call_command", call_command_but_run_round)
    out = io.StringIO()
    call_command("demo_real", "--no-serve", stdout=out, stderr=io.StringIO())

    model = BaseModel.objects.get(name=demo_real.BASE_MODEL)
    assert model.architecture == "LlamaForCausalLM" and model.has_chat_template
    assert 130_000_000 < model.n_parameters < 140_000_000
    owners = [username for username, _, _ in synthetic_chat.DEMO_OWNERS]
    for username in owners:
        accepted = Contribution.objects.get(owner__user__username=username)
        assert accepted.status == "accepted" and accepted.n_pairs == demo_real.DEMO_PAIRS, username
    eval_set = EvalSet.objects.get(name=demo_real.EVAL_SET)
    assert eval_set.n_pairs == synthetic_chat.DEMO_EVAL_PAIRS

    [(args, kwargs)] = asked
    assert kwargs["base_model"] == demo_real.BASE_MODEL and kwargs["preset"] == "lora"
    assert [args[i + 1] for i in range(0, len(args), 2)] == owners
    # The request, made by the service the command calls: on SmolLM2 through its chat template, every pair
    # within the lora preset's 256 tokens, each owner's conversations counted as templated.
    r = services.round_create(name=kwargs["name"], pool=kwargs["pool"], eval_set=eval_set, base_model=model,
                              seed=kwargs["seed"], preset=kwargs["preset"], owners=owners)
    assert r.config["chat_template"] is True and r.config["preset"] == {"name": "lora", "requested": "lora"}
    assert r.config["eval_lengths"]["n_truncated"] == 0 and r.config["eval_lengths"]["n_unscored"] == 0
    assert sorted((p.owner.name, p.n_usable, p.n_truncated, p.prompt_format) for p in r.participants.all()) \
        == sorted((username, demo_real.DEMO_PAIRS, 0, "chat template") for username in owners)
    assert "owners: ivy, fern, rowan, basil / " in out.getvalue()
