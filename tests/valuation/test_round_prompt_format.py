"""A round decides once, from its base model, whether conversations reach the model through its chat template,
records each owner's prompt format, and hashes and reads every owner's pairs (and the eval set) that one way.
A base model without a template (the project's tiny one) flattens conversations exactly as before."""
import shutil

import pytest

from marketplace.parsing import flatten_messages
from marketplace.services import contribution_create, eval_set_create
from valuation import services
from valuation.engine.data import Pair, messages_of
from valuation.engine.hashing import pairs_hash
from valuation.stages.common import eval_set_hash, snapshot_check, snapshot_pairs
from tests.conftest import jsonl_bytes, upload, verified_owner
from tests.valuation.engine.chat_fixtures import CHATML

pytestmark = pytest.mark.django_db
TEXT = [{"prompt": f"Question: how do I fix bike part {k}?\nAnswer:", "chosen": f" Tighten bolt {k} gently.",
         "rejected": f" Hit part {k} hard."} for k in range(3)]
TALK = [{"prompt": [{"role": "user", "content": f"What colour is the number {k} kite in the park?"}],
         "chosen": [{"role": "assistant", "content": f"Kite {k} is bright red."}],
         "rejected": [{"role": "assistant", "content": f"No kite {k} exists."}]} for k in range(3)]
EVAL = [{"prompt": [{"role": "user", "content": f"Which road leads to the harbour from gate {k}?"}],
         "chosen": [{"role": "assistant", "content": f"Take road {k} north."}],
         "rejected": [{"role": "assistant", "content": "Nobody knows."}]} for k in range(4)]


def _owner(username: str, records):
    owner = verified_owner(username)
    contribution_create(owner=owner, file=upload(f"{username}.jsonl", jsonl_bytes(records)),
                        filename=f"{username}.jsonl")


@pytest.fixture
def market():
    _owner("alice", TEXT)
    _owner("carol", TALK)
    _owner("dave", [dict(r, prompt=r["prompt"].replace("bike", "boat")) for r in TEXT[:1]] +
           [{**r, "prompt": [{"role": "user", "content": r["prompt"][0]["content"].replace("kite", "drum")}]}
            for r in TALK[:2]])
    return eval_set_create(name="eval", file=upload("eval.jsonl", jsonl_bytes(EVAL)), filename="eval.jsonl")


@pytest.fixture
def chat_model_dir(fake_model_dir):
    path = fake_model_dir.parent / "chat-model"
    shutil.copytree(fake_model_dir, path)
    (path / "chat_template.jinja").write_text(CHATML, encoding="utf-8")
    return path


def flattened(record) -> Pair:
    """A conversational row as every round before chat templates hashed and trained it."""
    return Pair(*(flatten_messages(record[f]) for f in ("prompt", "chosen", "rejected")))


def as_messages(record) -> Pair:
    return Pair(*(messages_of(record[f]) for f in ("prompt", "chosen", "rejected")))


def create(eval_set, model_dir, name):
    return services.round_create(name=name, pool="100.00", eval_set=eval_set, base_model_dir=str(model_dir))


def formats(r) -> dict:
    return {p.owner.name: p.prompt_format for p in r.participants.all()}


def test_without_a_chat_template_conversations_are_flattened_as_before(market, fake_model_dir):
    r = create(market, fake_model_dir, "flat")
    assert "chat_template" not in r.config
    assert formats(r) == {"alice": "text", "carol": "conversation flattened (base model has no chat template)",
                          "dave": "mixed: 1 text, 2 conversation flattened (base model has no chat template)"}
    carol = r.participants.get(owner__user__username="carol")
    assert carol.data_hash == pairs_hash([flattened(rec) for rec in TALK])
    assert r.eval_set_hash == pairs_hash([flattened(rec) for rec in EVAL])
    alice = r.participants.get(owner__user__username="alice")
    assert alice.data_hash == pairs_hash([Pair(**rec) for rec in TEXT])


def test_with_a_chat_template_conversations_stay_messages_everywhere(market, fake_model_dir, chat_model_dir):
    flat = create(market, fake_model_dir, "flat")
    chat = create(market, chat_model_dir, "chat")
    assert chat.config["chat_template"] is True
    assert formats(chat) == {"alice": "text", "carol": "chat template",
                             "dave": "mixed: 1 text, 2 conversation flattened (TRL trains one format per dataset)"}
    carol = chat.participants.get(owner__user__username="carol")
    assert carol.data_hash == pairs_hash([as_messages(rec) for rec in TALK])
    assert chat.eval_set_hash == pairs_hash([as_messages(rec) for rec in EVAL]) != flat.eval_set_hash
    # The stages read the pairs the creation hashed: the snapshot holds, and they are messages.
    snapshot_check(chat)
    snapshot_check(flat)
    assert snapshot_pairs(carol)[1] == [as_messages(rec) for rec in TALK]
    assert eval_set_hash(market, chat=True) == chat.eval_set_hash
    same = {p.owner.name: p.data_hash for p in flat.participants.all()}
    assert {p.owner.name: p.data_hash for p in chat.participants.all() if p.owner.name != "carol"} == \
        {k: v for k, v in same.items() if k != "carol"}


def test_the_round_page_and_api_show_each_owners_prompt_format(market, chat_model_dir, staff_user, api_staff, client):
    r = create(market, chat_model_dir, "chat")
    check = api_staff.get(f"/api/rounds/{r.pk}/").json()["length_check"]
    assert check["chat_template"] is True
    assert {o["owner"]: o["prompt_format"] for o in check["owners"]}["carol"] == "chat template"
    client.force_login(staff_user)
    page = client.get(f"/rounds/{r.pk}/").content.decode()
    assert "Prompt format" in page and "chat template" in page and "mixed: 1 text, 2 conversation flattened" in page
