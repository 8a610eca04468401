"""Near-duplicate refusal: recall per edit class, false positives on distinct pairs, and speed.

A synthetic but realistic marketplace (no downloads): advice questions over eight topics, each prompt
a template filled with a subject, a goal, a situation and a constraint, wrapped as "Question: …\nAnswer:"
half of the time; chosen answers are three sentences from the topic's bank with the slots filled in,
rejected ones an unhelpful sentence. 100,000 such pairs are held by 50 owners, plus a 1,000-pair eval
set (imported through the real service); the near-duplicate index is backfilled as a migration would.

Then, through `marketplace.services.contribution_create` (the service the web form, the API and the
CLI call) on SQLite:
* recall: for every edit class, 1,000 held pairs edited that way are uploaded by a new owner as one file
  (the conversational classes as JSONL and as Parquet); recall = refused rows / rows. The classes the
  issue measured carry a target of 99%; the others are this bench's own harder edits;
* false positives and speed: a 10,000-pair file of genuinely distinct pairs — half "siblings" of held
  pairs (same topic and template, one slot changed, fresh answers from the same banks), half fresh
  draws — is uploaded and timed; the false-positive rate is its refused rows / 10,000 (target ≤ 0.1%,
  and ≤ 10 s for the upload).

    OMP_NUM_THREADS=1 .venv/bin/python bench/near_duplicates.py [--held 100000] [--per-class 1000]

Prints a markdown table and writes bench/results/near_duplicates.json.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.upload import encode, setup_django  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "near_duplicates.json"
RECALL_TARGET, FP_TARGET, SECONDS_TARGET = 0.99, 0.001, 10.0

TOPICS = {
    "cooking": dict(
        subjects="sourdough loaf|risotto|beef stew|lemon tart|tomato sauce|pad thai|banana bread|roast chicken|"
                 "lentil soup|pizza dough|apple pie|curry paste|fried rice|pancake batter|salmon fillet|"
                 "vegetable stock|chocolate mousse|focaccia|omelette|chili con carne|gnocchi|pesto|ramen broth|"
                 "carrot cake|paella|hummus|brioche|shortbread|ratatouille|cheesecake".split("|"),
        goals="improve|speed up|scale up|simplify|make ahead|fix|season|thicken|freeze|reheat|lighten|"
              "flavour".split("|"),
        facts="taste it as you go|rest it for ten minutes|use a heavy pan|add salt in stages|toast the spices "
              "first|keep the heat moderate|weigh the flour|chill it overnight|deglaze with a little wine|"
              "finish with fresh herbs".split("|"),
    ),
    "gardening": dict(
        subjects="tomato plants|rose bushes|lavender|apple tree|lawn|basil|strawberry bed|hydrangeas|"
                 "potatoes|raspberry canes|fig tree|orchids|succulents|hedge|blueberry bushes|courgettes|"
                 "peonies|olive tree|herb spiral|compost heap|peppers|clematis|tulip bulbs|cucumbers|"
                 "lemon tree|wildflower meadow|runner beans|ferns|bonsai|pumpkins".split("|"),
        goals="prune|water|feed|protect|propagate|repot|revive|harvest|mulch|train|overwinter|"
              "plant".split("|"),
        facts="water at the base in the morning|add a thick layer of mulch|cut just above a bud|"
              "use a slow release feed|check the drainage|remove dead growth first|give it full sun|"
              "loosen the roots gently|space the plants well|watch for aphids".split("|"),
    ),
    "programming": dict(
        subjects="Python script|SQL query|React component|REST API|bash loop|Docker image|Git history|"
                 "unit tests|regular expression|CSV parser|Django model|Rust function|CI pipeline|"
                 "JSON config|web scraper|CSS layout|Go service|cron job|logging setup|pandas dataframe|"
                 "TypeScript types|memory leak|database index|async worker|shell prompt|Makefile|"
                 "Kubernetes manifest|C pointer|Java class|HTTP cache".split("|"),
        goals="debug|optimise|refactor|test|document|secure|profile|deploy|simplify|migrate|lint|"
              "parallelise".split("|"),
        facts="measure before changing anything|write a failing test first|read the error message "
              "carefully|add logging at the boundaries|keep functions small|pin your dependencies|"
              "check the edge cases|use the standard library|run it under a profiler|"
              "commit in small steps".split("|"),
    ),
    "finance": dict(
        subjects="emergency fund|credit card debt|student loan|retirement account|monthly budget|"
                 "mortgage|index fund|tax return|car loan|savings goal|household bills|pension|"
                 "stock portfolio|rental income|freelance invoices|wedding budget|holiday fund|"
                 "grocery spending|insurance policy|credit score|bank fees|side business|childcare costs|"
                 "energy bills|subscription costs|gift budget|phone contract|moving costs|"
                 "overdraft|charity giving".split("|"),
        goals="reduce|organise|plan|track|pay off|grow|protect|review|automate|rebalance|negotiate|"
              "start".split("|"),
        facts="list every expense for a month|pay the highest interest first|automate a fixed transfer|"
              "keep three months of costs aside|compare at least three offers|read the small print|"
              "review it every quarter|avoid paying only the minimum|use a simple spreadsheet|"
              "ask for a better rate".split("|"),
    ),
    "travel": dict(
        subjects="rail trip|road trip|backpacking route|city break|camping weekend|ski holiday|"
                 "long haul flight|cruise|hiking trail|family holiday|work trip|island hop|"
                 "museum visit|food tour|cycling tour|honeymoon|festival weekend|beach holiday|"
                 "visa application|travel insurance|packing list|hotel booking|airport transfer|"
                 "language course|volunteering trip|night train|ferry crossing|safari|"
                 "desert trek|canal boat".split("|"),
        goals="plan|budget|book|prepare|shorten|extend|pack for|insure|organise|cancel|"
              "rearrange|enjoy".split("|"),
        facts="book the transport first|keep copies of your documents|pack one day of clothes less|"
              "check the local holidays|travel outside the peak season|leave a free afternoon|"
              "learn a few phrases|carry a little cash|download offline maps|"
              "tell your bank before you go".split("|"),
    ),
    "home": dict(
        subjects="leaking tap|squeaky door|cracked tile|damp wall|blocked drain|loose shelf|"
                 "draughty window|wobbly table|stained carpet|noisy radiator|peeling paint|"
                 "broken blind|mouldy grout|sticking drawer|dripping shower|scratched floor|"
                 "faulty light switch|clogged gutter|rusty gate|cold bedroom|tired kitchen|"
                 "garden shed|cluttered garage|small hallway|bathroom fan|garden fence|"
                 "wooden deck|loft hatch|front door|attic insulation".split("|"),
        goals="repair|clean|paint|insulate|replace|seal|brighten|tidy|soundproof|strengthen|"
              "update|maintain".split("|"),
        facts="turn off the supply first|use the right screws|clean the surface before you start|"
              "wear gloves and goggles|measure twice and cut once|let each coat dry fully|"
              "ventilate the room|start in a hidden corner|keep the receipts|"
              "ask a professional for anything electrical".split("|"),
    ),
    "fitness": dict(
        subjects="running routine|push ups|squat form|yoga practice|swimming technique|cycling training|"
                 "stretching routine|rowing workout|climbing grip|posture|sleep schedule|step count|"
                 "marathon plan|core strength|knee pain|back pain|warm up|cool down|protein intake|"
                 "morning workout|lunch break walk|home gym|kettlebell swing|deadlift|pull ups|"
                 "balance|breathing|hydration|recovery days|jump rope".split("|"),
        goals="improve|start|build up|fix|vary|measure|schedule|recover from|progress|learn|"
              "keep up|adapt".split("|"),
        facts="increase the load by small steps|rest at least one day a week|film yourself once|"
              "warm up for ten minutes|keep a simple log|sleep eight hours|stop if it hurts sharply|"
              "focus on slow controlled reps|drink water through the day|work with a coach at first"
              .split("|"),
    ),
    "pets": dict(
        subjects="puppy|older dog|kitten|indoor cat|rabbit|hamster|parrot|goldfish|tortoise|guinea pig|"
                 "rescue dog|anxious cat|chickens|ferret|horse|lizard|budgie|two cats|dog and cat|"
                 "collie|terrier|greyhound|labrador|siamese cat|persian cat|cockatiel|bearded dragon|"
                 "chinchilla|pond fish|sheepdog".split("|"),
        goals="train|feed|groom|calm|exercise|socialise|house train|introduce|travel with|"
              "entertain|bathe|settle".split("|"),
        facts="keep sessions short and positive|stick to a routine|reward the behaviour you want|"
              "ask your vet first|give it a quiet place to hide|change the diet slowly|"
              "never punish after the fact|provide fresh water daily|use a harness|"
              "introduce new things gradually".split("|"),
    ),
}
SITUATIONS = ("on a tight budget|as a complete beginner|with very little time|in a small flat|for a family of "
              "five|after a bad first attempt|in cold weather|in a hot climate|while working from home|with a "
              "bad back|for the first time this year|with only basic tools|before guests arrive|without any help|"
              "on a weekend").split("|")
CONSTRAINTS = ("spending a fortune|wasting a whole day|making a mess|breaking anything|getting overwhelmed|"
               "buying special equipment|losing motivation|annoying the neighbours|starting over|"
               "cutting corners").split("|")
TEMPLATES = (
    "How do I {goal} my {subject} {situation} without {constraint}?",
    "What is the best way to {goal} a {subject} {situation}, ideally without {constraint}?",
    "I want to {goal} my {subject} {situation}. How can I do it without {constraint}?",
    "Can you explain how to {goal} the {subject} {situation} and avoid {constraint}?",
    "Any advice on how to {goal} a {subject} {situation} without {constraint}?",
    "{Situation}, how should I {goal} my {subject} without {constraint}?",
)
CHOSEN = (
    "To {goal} the {subject}, {fact}.",
    "Most people who {goal} a {subject} {situation} find that it helps to {fact2}.",
    "Then {fact3}, which saves you from {constraint}.",
    "A good habit is to {fact} and to check the result after a day or two.",
    "If you are {situation}, {fact2} before anything else.",
    "Do not rush it: {fact3}, and you will avoid {constraint}.",
    "Write down what you did so the next time you {goal} it goes faster.",
    "Finally, {fact}; the {subject} will thank you.",
)
REJECTED = (
    "Just {goal} it however you like, it does not really matter.",
    "I have no idea, maybe search online for the {subject}.",
    "You should pay someone else to {goal} your {subject}.",
    "Honestly it is not worth the trouble to {goal} a {subject}.",
    "Try anything and see what happens with the {subject}.",
    "Nobody can tell you that, every {subject} is different.",
)
SYNONYMS = {"best": "finest", "way": "method", "help": "assist", "advice": "tips", "explain": "describe",
            "good": "great", "rush": "hurry", "find": "discover", "check": "inspect", "want": "wish",
            "avoid": "prevent", "saves": "spares", "first": "initially", "habit": "practice",
            "finally": "lastly", "faster": "quicker", "start": "begin", "small": "little"}


def _slots(rng: random.Random, topic: str | None = None, keep: dict | None = None) -> dict:
    topic = topic or rng.choice(sorted(TOPICS))
    bank = TOPICS[topic]
    slots = dict(topic=topic, template=rng.randrange(len(TEMPLATES)), subject=rng.choice(bank["subjects"]),
                 goal=rng.choice(bank["goals"]), situation=rng.choice(SITUATIONS),
                 constraint=rng.choice(CONSTRAINTS), wrapped=rng.random() < 0.5)
    return {**slots, **(keep or {})}


def _pair(slots: dict, rng: random.Random) -> dict:
    bank = TOPICS[slots["topic"]]
    facts = rng.sample(bank["facts"], 3)
    fill = dict(goal=slots["goal"], subject=slots["subject"], situation=slots["situation"],
                Situation=slots["situation"][0].upper() + slots["situation"][1:], constraint=slots["constraint"],
                fact=facts[0], fact2=facts[1], fact3=facts[2])
    question = TEMPLATES[slots["template"]].format(**fill)
    question = question[0].upper() + question[1:]
    prompt = f"Question: {question}\nAnswer:" if slots["wrapped"] else question
    sentences = [s.format(**fill) for s in rng.sample(CHOSEN, 3)]
    chosen = " ".join(s[0].upper() + s[1:] for s in sentences)
    return {"prompt": prompt, "chosen": chosen, "rejected": rng.choice(REJECTED).format(**fill)}


def _key(slots: dict) -> tuple:
    return tuple(slots[k] for k in ("topic", "template", "subject", "goal", "situation", "constraint"))


def held_pairs(n: int, rng: random.Random, taken: set) -> tuple[list[dict], list[dict]]:
    """n pairs with distinct prompts (no two share all slots), and their slots."""
    out, slots_of = [], []
    while len(out) < n:
        slots = _slots(rng)
        if _key(slots) in taken:
            continue
        taken.add(_key(slots))
        out.append(_pair(slots, rng))
        slots_of.append(slots)
    return out, slots_of


def distinct_pairs(n: int, held_slots: list[dict], rng: random.Random, taken: set) -> list[dict]:
    """Half siblings of held pairs (one slot changed, fresh answers), half fresh draws."""
    out = []
    while len(out) < n:
        if len(out) % 2 == 0:
            base = rng.choice(held_slots)
            changed = rng.choice(("subject", "goal", "situation", "constraint", "template"))
            slots = {**base, changed: _slots(rng, base["topic"])[changed]}
        else:
            slots = _slots(rng)
        if _key(slots) in taken:
            continue
        taken.add(_key(slots))
        out.append(_pair(slots, rng))
    return out


# --- edit classes -----------------------------------------------------------------------------------

def _edit(field, change):
    return lambda r, rng: {**r, field: change(r[field], rng)}


def _both(*edits):
    def apply(r, rng):
        for edit in edits:
            r = edit(r, rng)
        return r
    return apply


def _typo(text: str, rng: random.Random) -> str:
    words = text.split(" ")
    long = [i for i, w in enumerate(words) if len(w) > 4 and w.isalpha()]
    i = rng.choice(long)
    w = words[i]
    j = rng.randrange(1, len(w) - 2)
    words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2:]
    return " ".join(words)


def _word_swap(text: str, rng: random.Random) -> str:
    words = text.split(" ")
    i = rng.randrange(len(words) - 1)
    words[i], words[i + 1] = words[i + 1], words[i]
    return " ".join(words)


def _synonym(text: str, rng: random.Random) -> str:
    candidates = [w for w in SYNONYMS if re.search(rf"\b{w}\b", text, re.I)]
    if not candidates:  # no word of the map: change the first long word's ending instead
        return re.sub(r"\b(\w{6,})\b", lambda m: m.group(1)[:-1] + "es", text, count=1)
    word = rng.choice(candidates)
    return re.sub(rf"\b{word}\b", SYNONYMS[word], text, count=1, flags=re.I)


def _reorder(text: str, rng: random.Random) -> str:
    sentences = re.split(r"(?<=[.!?]) ", text)
    return " ".join(sentences[1:] + sentences[:1])


def _q(prompt: str, rng) -> str:
    return prompt.replace("Question:", "Q:") if prompt.startswith("Question:") else "Q: " + prompt


def _conversational(r, rng):
    prompt = r["prompt"].removeprefix("Question: ").removesuffix("\nAnswer:")
    return {"prompt": [{"role": "user", "content": prompt}],
            "chosen": [{"role": "assistant", "content": r["chosen"]}],
            "rejected": [{"role": "assistant", "content": r["rejected"]}]}


def _new_rejected(r, rng):
    return {**r, "rejected": rng.choice(["Who knows, honestly.", "You probably cannot do that at all.",
                                         "Ask somebody who cares about it.", "That sounds like a waste of time."])}


ISSUE_CLASSES = {  # measured in issue 24; target ≥ 99% recall each
    "extra '!' on chosen": _edit("chosen", lambda t, rng: t + "!"),
    "punctuation removed": _both(_edit("prompt", lambda t, rng: re.sub(r"[?,.]", "", t)),
                                 _edit("chosen", lambda t, rng: re.sub(r"[,.:;]", "", t))),
    "punctuation added": _edit("chosen", lambda t, rng: t.replace(". ", "!! ", 1).replace(" and ", ", and ") + "!"),
    "one word added to rejected": _edit("rejected", lambda t, rng: "Well, " + t[0].lower() + t[1:]),
    "same prompt and chosen, new rejected": _new_rejected,
    "'Question:' → 'Q:'": _edit("prompt", _q),
    "markdown around the answer": _edit("chosen", lambda t, rng: f"## Answer\n\n**{t}**"),
    "HTML entity for '?'": _edit("prompt", lambda t, rng: t.replace("?", "&#63;")),
    "chosen answer repeated": _edit("chosen", lambda t, rng: t + " " + t),
    "conversational form (JSONL)": _conversational,
    "conversational form (Parquet)": _conversational,
}
OWN_CLASSES = {  # this bench's own, harder edits: reported, no target
    "case + whitespace (exact stage)": lambda r, rng: {k: "  " + v.upper().replace(" ", "  ") for k, v in r.items()},
    "typo in chosen": _edit("chosen", _typo),
    "typo in prompt": _edit("prompt", _typo),
    "word swap in chosen": _edit("chosen", _word_swap),
    "sentence reorder in chosen": _edit("chosen", _reorder),
    "synonym of one word in chosen": _edit("chosen", _synonym),
    "synonym of one word in prompt": _edit("prompt", _synonym),
    "trailing whitespace + punctuation": lambda r, rng: {k: v + " ...  \n" for k, v in r.items()},
    "answer truncated by a word": _edit("chosen", lambda t, rng: t.rsplit(" ", 1)[0]),
    "typo + markdown + new rejected": _both(_edit("chosen", _typo), _edit("chosen", lambda t, rng: f"*{t}*"),
                                            _new_rejected),
}
EVAL_CLASS = "eval prompt, new answers"  # contamination, whatever the answers (target ≥ 99%)


# --- the run ----------------------------------------------------------------------------------------

def _load_held(pairs: list[dict], n_owners: int) -> float:
    """Held pairs stored directly (their load is not what is measured), then indexed by the backfill
    a migration runs; returns the backfill's seconds."""
    from marketplace.models import Contribution, PreferencePair
    from marketplace.normalise import content_hash
    from marketplace.services import near_index_update, owner_create

    per_owner = -(-len(pairs) // n_owners)
    for k in range(n_owners):
        chunk = pairs[k * per_owner:(k + 1) * per_owner]
        owner = owner_create(username=f"held{k}")
        contribution = Contribution.objects.create(owner=owner, original_name=f"held{k}.jsonl", sha256="0" * 64,
                                                   n_pairs=len(chunk), status="accepted")
        PreferencePair.objects.bulk_create(
            [PreferencePair(contribution=contribution, prompt=p["prompt"], chosen=p["chosen"], rejected=p["rejected"],
                            content_hash=content_hash(p["prompt"], p["chosen"], p["rejected"]), row_number=i + 1)
             for i, p in enumerate(chunk)], batch_size=5000)
    started = time.perf_counter()
    near_index_update()
    return time.perf_counter() - started


def _upload(owner, records: list[dict], fmt: str) -> tuple[int, float, float]:
    """(refused rows, wall seconds, CPU seconds) of one file through the real upload service. The check is
    single-threaded, so CPU seconds are what the wall time would be on an idle core of a busy machine."""
    from marketplace.parsing import UploadLimits, UploadRefused
    from marketplace.services import contribution_create

    limits = UploadLimits.from_settings()
    data = encode(records, fmt)
    started, cpu = time.perf_counter(), time.process_time()
    try:
        contribution_create(owner=owner, file=io.BytesIO(data), filename=f"upload.{fmt}", limits=limits)
        refused = 0
    except UploadRefused as exc:
        refused = exc.n_errors
    return refused, time.perf_counter() - started, time.process_time() - cpu


def run(n_held: int, per_class: int, n_distinct: int, n_eval: int, seed: int) -> dict:
    from marketplace.services import eval_set_create, owner_create

    rng = random.Random(seed)
    taken: set = set()
    held, held_slots = held_pairs(n_held, rng, taken)
    evals, _ = held_pairs(n_eval, rng, taken)
    distinct = distinct_pairs(n_distinct, held_slots, rng, taken)
    backfill_seconds = _load_held(held, n_owners=50)
    eval_set_create(name="bench-eval", file=io.BytesIO(encode(evals, "jsonl")), filename="eval.jsonl")

    rows = []
    for name, edit in {**ISSUE_CLASSES, **OWN_CLASSES}.items():
        sources = rng.sample(held, per_class)
        variants = [edit(dict(r), rng) for r in sources]
        fmt = "parquet" if "Parquet" in name else "jsonl"
        refused, seconds, _ = _upload(owner_create(username=f"prober{len(rows)}"), variants, fmt)
        rows.append({"class": name, "issue": name in ISSUE_CLASSES, "n": per_class, "refused": refused,
                     "recall": refused / per_class, "seconds": round(seconds, 2)})
    # an eval prompt with answers taken from elsewhere: contamination whatever the answers
    variants = [{**_new_rejected(dict(r), rng), "chosen": rng.choice(held)["chosen"]}
                for r in rng.sample(evals, min(per_class, n_eval))]
    refused, seconds, _ = _upload(owner_create(username="eval-prober"), variants, "jsonl")
    rows.append({"class": EVAL_CLASS, "issue": True, "n": len(variants), "refused": refused,
                 "recall": refused / len(variants), "seconds": round(seconds, 2)})

    load = os.getloadavg()[0]
    refused, seconds, cpu_seconds = _upload(owner_create(username="honest"), distinct, "jsonl")
    return {"held_pairs": n_held, "eval_pairs": n_eval, "per_class": per_class, "seed": seed,
            "backfill_seconds": round(backfill_seconds, 1), "classes": rows,
            "distinct": {"n": n_distinct, "refused": refused, "false_positive_rate": refused / n_distinct,
                         "upload_seconds": round(seconds, 2), "upload_cpu_seconds": round(cpu_seconds, 2),
                         "load_average_before": round(load, 1)},
            "targets": {"recall": RECALL_TARGET, "false_positive_rate": FP_TARGET, "upload_seconds": SECONDS_TARGET}}


def table(result: dict) -> str:
    lines = ["| edit class | issue's list | variants | refused | recall |", "|---|---|---:|---:|---:|"]
    for row in result["classes"]:
        mark = "yes" if row["issue"] else "own"
        lines.append(f"| {row['class']} | {mark} | {row['n']:,} | {row['refused']:,} | {row['recall']:.1%} |")
    d = result["distinct"]
    lines += ["", "| distinct pairs (half siblings of held pairs) | refused | false-positive rate | "
                  "upload seconds, wall / CPU (held: {:,} + {:,} eval) | load average |".format(
                      result["held_pairs"], result["eval_pairs"]),
              "|---:|---:|---:|---:|---:|",
              f"| {d['n']:,} | {d['refused']:,} | {d['false_positive_rate']:.3%} | "
              f"{d['upload_seconds']:.2f} / {d['upload_cpu_seconds']:.2f} | {d['load_average_before']} |"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--held", type=int, default=100_000)
    parser.add_argument("--per-class", type=int, default=1000)
    parser.add_argument("--distinct", type=int, default=10_000)
    parser.add_argument("--eval", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        setup_django(Path(tmp))
        result = run(args.held, args.per_class, args.distinct, args.eval, args.seed)
    result["machine"] = {"python": platform.python_version(), "cpu": platform.processor() or platform.machine()}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))


if __name__ == "__main__":
    main()
