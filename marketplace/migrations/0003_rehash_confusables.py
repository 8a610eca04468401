"""Re-hash stored pairs with the stricter normal form of marketplace/normalise.py (invisible characters
dropped, Latin-lookalike letters folded), so anti-replication compares like with like.

Stored data is never refused after the fact: when two stored training pairs now share a hash, the later
one keeps its old hash (and stays), and the migration says so.
"""
from django.db import migrations

CHUNK = 2000


def _rehash(model, unique: bool) -> int:
    from marketplace.normalise import content_hash

    kept = 0
    seen = set(model.objects.values_list("content_hash", flat=True)) if unique else set()
    rows = model.objects.order_by("id").values_list("id", "pair_format", "prompt", "chosen", "rejected",
                                                    "content_hash")
    changed = []
    for pk, pair_format, prompt, chosen, rejected, old in rows.iterator(chunk_size=CHUNK):
        new = content_hash(*(_flat(v, pair_format) for v in (prompt, chosen, rejected)))
        if new == old:
            continue
        if unique and new in seen:
            kept += 1
            continue
        seen.add(new)
        changed.append(model(id=pk, content_hash=new))
    model.objects.bulk_update(changed, ["content_hash"], batch_size=CHUNK)
    return kept


def _flat(value: str, pair_format: str) -> str:
    import json

    from marketplace.parsing import flatten_messages

    return flatten_messages(json.loads(value)) if pair_format == "conversational" else value


def rehash(apps, schema_editor):
    kept = _rehash(apps.get_model("marketplace", "PreferencePair"), unique=True)
    if kept:
        print(f"\n  {kept} stored pair(s) equal an earlier one under the new normal form; kept with their old hash")
    # Eval pairs are unique per set only; a set that now holds two equal pairs keeps both hashes as they are.
    EvalPair = apps.get_model("marketplace", "EvalPair")
    for set_id in EvalPair.objects.values_list("eval_set_id", flat=True).distinct():
        _rehash_eval_set(EvalPair, set_id)


def _rehash_eval_set(EvalPair, set_id) -> None:
    from marketplace.normalise import content_hash

    rows = list(EvalPair.objects.filter(eval_set_id=set_id).values_list(
        "id", "pair_format", "prompt", "chosen", "rejected", "content_hash"))
    new = {pk: content_hash(*(_flat(v, fmt) for v in (p, c, r))) for pk, fmt, p, c, r, _ in rows}
    if len(set(new.values())) < len(rows):
        return
    EvalPair.objects.bulk_update([EvalPair(id=pk, content_hash=h) for pk, h in new.items()], ["content_hash"],
                                 batch_size=CHUNK)


class Migration(migrations.Migration):
    dependencies = [("marketplace", "0002_random_ids")]
    operations = [migrations.RunPython(rehash, migrations.RunPython.noop)]
