"""A tiny chat model for the chat-template tests: the tiny byte-level tokenizer given a ChatML-like template
(SmolLM2's shape, with the tokenizer's own EOS closing each turn) and an untrained small Llama."""
from __future__ import annotations

from valuation.engine.data import Pair

CHATML = ("{{ bos_token }}{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
          "{{ message['content'] }}{{ eos_token }}\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def user(text: str) -> tuple:
    return (("user", text),)


def assistant(text: str) -> tuple:
    return (("assistant", text),)


def chat_pairs() -> list[Pair]:
    """Eight short conversational pairs (one with a system turn, one two-turn prompt)."""
    rows = [
        ("Oil the fan?", "Yes, twice a year.", "No."),
        ("Fix a chain?", "Clean it, then oil it.", "Buy a new bike."),
        ("Is the bike red?", "It is red.", "Blue."),
        ("Tea or milk?", "Tea, hot.", "Milk."),
        ("Close the door?", "Yes, please do.", "Leave it."),
        ("Fold the map?", "Fold it in half.", "Tear it."),
    ]
    pairs = [Pair(prompt=user(q), chosen=assistant(c), rejected=assistant(r)) for q, c, r in rows]
    pairs.append(Pair(prompt=(("system", "Be brief."), ("user", "Time?")), chosen=assistant("Noon."),
                      rejected=assistant("I do not know the time.")))
    pairs.append(Pair(prompt=(("user", "Hi."), ("assistant", "Hello."), ("user", "Bye?")),
                      chosen=assistant("Bye, take care."), rejected=assistant("What?")))
    return pairs
