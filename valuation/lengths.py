"""The length check a round makes when it is created: every owner's snapshotted pairs measured as TRL
will tokenise and cut them (engine/lengths.py) under the round's base tokenizer and training config.

Upload limits count characters, training counts tokens: an owner whose every prompt fills
`max_length` would leave TRL an empty training set and fail the whole round. Such an owner is
excluded here, with a reason both they and the admin see, and the round runs with the others;
an owner some of whose pairs are cut takes part, and the round records how many.
"""
from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import ValidationError

from marketplace.models import Contribution, DataOwner

from .stages.common import eval_pairs, owner_rows, prompt_format, to_engine_pairs


@dataclass(frozen=True)
class OwnerCheck:
    owner: DataOwner  # the account that stands for the player
    payee: object  # marketplace.models.Payee (None only for rounds from before payees)
    contributions: list[Contribution]
    pairs: list  # engine Pairs, in the order the round hashes and trains them
    report: object  # engine.lengths.LengthReport
    prompt_format: str = ""  # how the pairs' prompts reach the model (stages.common.prompt_format)

    @property
    def reason(self) -> str:
        """Why the owner cannot take part (empty when they can)."""
        return "" if self.report.trainable else exclusion_reason(self.report)


def exclusion_reason(report) -> str:
    pairs = f"{report.n_pairs} pair{'s' if report.n_pairs != 1 else ''}"
    return (f"None of your {pairs} fits this round's training length of {report.max_length} tokens: every "
            f"prompt alone is {report.max_length} tokens or longer (the longest is {report.longest_prompt}), so "
            f"training would keep no answer to learn from. Shorter prompts (prompt plus answer within "
            f"{report.max_length} tokens) can take part in later rounds.")


def _tokenizer(base_dir):
    from valuation.engine import runtime

    try:
        return runtime.tokenizer(base_dir)
    except (OSError, ValueError) as exc:
        raise ValidationError(f"'{base_dir}' has no tokenizer a round could train with ({exc})")


def _training(config: dict) -> tuple[int | None, str]:
    from valuation.engine.lengths import DEFAULT_TRUNCATION_MODE

    training = config["training"]
    return training.get("max_length"), training.get("truncation_mode", DEFAULT_TRUNCATION_MODE)


def _chat(config: dict) -> bool:
    return bool(config.get("chat_template"))  # as stages.common.uses_chat reads it from the round


def participants_check(participants, *, base_dir, config: dict) -> list[OwnerCheck]:
    """Each player (payee, the account standing for it, its contributions) measured against the round's
    tokenizer and training length."""
    from valuation.engine.lengths import length_report

    tokenizer = _tokenizer(base_dir)
    max_length, mode = _training(config)
    checks = []
    for payee, owner, contributions in participants:
        rows = owner_rows(contributions)
        pairs = to_engine_pairs(rows, chat=_chat(config))
        checks.append(OwnerCheck(owner=owner, payee=payee, contributions=contributions, pairs=pairs,
                                 report=length_report(tokenizer, pairs, max_length, mode),
                                 prompt_format=prompt_format(rows, chat=_chat(config))))
    return checks


def eval_set_check(eval_set, *, base_dir, config: dict) -> dict:
    """The eval set under the same cut: how many pairs are cut, and how many keep no answer token at all
    (their margin is 0 under every model). Refused when no eval pair keeps an answer."""
    from valuation.engine.lengths import length_report

    max_length, mode = _training(config)
    report = length_report(_tokenizer(base_dir), eval_pairs(eval_set, chat=_chat(config)), max_length, mode)
    if report.n_pairs and not report.trainable:
        raise ValidationError(f"no pair of eval set '{eval_set.name}' fits the training length of {max_length} "
                              f"tokens: every prompt alone is {max_length} tokens or longer (the longest is "
                              f"{report.longest_prompt}); raise max_length or use shorter eval pairs")
    return {"max_length": max_length, "n_pairs": report.n_pairs, "n_truncated": report.n_truncated,
            "n_unscored": report.n_dropped}


def usable_or_refuse(checks: list[OwnerCheck]) -> list[OwnerCheck]:
    """The owners who can take part; refuses the round when there is none."""
    usable = [check for check in checks if check.report.trainable]
    if not usable:
        names = ", ".join(check.owner.user.username for check in checks)
        max_length = checks[0].report.max_length if checks else None
        raise ValidationError(f"no owner has a pair that fits the training length of {max_length} tokens "
                              f"(every prompt of {names} is that long or longer): nothing to value")
    return usable
