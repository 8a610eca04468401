"""What TRL's DPOTrainer (1.16) will train on for each pair: the tokens it keeps and the pairs it drops.

Upload limits count characters; training counts tokens. `DPOTrainer._prepare_dataset` tokenises
prompt, prompt+chosen and prompt+rejected (EOS appended to plain-text responses, a conversation
rendered by the chat template instead; the response
starts where the tokenised prompt stops being a common prefix of both, as scoring.tokenize_pair
reproduces), and with `truncation_mode="keep_start"` it *drops* every pair whose prompt alone
has >= `max_length` tokens, since the cut would leave it no response token. `DataCollatorForPreference`
then cuts each prompt+response sequence to `max_length` (keeping the start, or with "keep_end" the end,
in which case nothing is dropped). An owner all of whose pairs are dropped leaves TRL an empty
training set, and training fails (`num_samples=0`): a round checks this before it runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from .data import Pair
from .scoring import tokenize_pair

TRUNCATION_MODES = ("keep_start", "keep_end")
DEFAULT_TRUNCATION_MODE = "keep_start"  # DPOConfig's default; dpo.py does not change it


@dataclass(frozen=True)
class PairLength:
    prompt: int  # prompt tokens (TRL's prompt_ids: the common prefix of both tokenised sequences)
    chosen: int  # chosen response tokens, EOS included, before truncation
    rejected: int  # rejected response tokens, EOS included, before truncation
    max_length: int | None
    truncation_mode: str = DEFAULT_TRUNCATION_MODE

    @property
    def dropped(self) -> bool:
        """TRL removes the pair from the training set (its prompt alone fills max_length)."""
        return self.max_length is not None and self.truncation_mode == "keep_start" and self.prompt >= self.max_length

    @property
    def trained_tokens(self) -> int:
        """Tokens of the two sequences TRL trains on for this pair (prompt + response, cut to max_length)."""
        if self.dropped:
            return 0
        cap = self.max_length or (self.prompt + max(self.chosen, self.rejected))
        return min(self.prompt + self.chosen, cap) + min(self.prompt + self.rejected, cap)

    @property
    def truncated(self) -> bool:
        """TRL trains on the pair but cuts at least one of its two sequences."""
        if self.dropped or self.max_length is None:
            return False
        return max(self.prompt + self.chosen, self.prompt + self.rejected) > self.max_length


@dataclass(frozen=True)
class LengthReport:
    """One owner's pairs against a training config: how many TRL would keep whole, cut, or drop."""

    n_pairs: int
    n_usable: int  # pairs TRL trains on (whole or cut)
    n_truncated: int  # usable pairs TRL cuts
    n_dropped: int  # pairs TRL removes: no response token would survive the cut
    longest_prompt: int  # tokens of the longest prompt (0 without pairs)
    max_length: int | None
    n_tokens: int = 0  # tokens of the sequences TRL trains on per epoch (both of each usable pair, after the cut)

    @property
    def trainable(self) -> bool:
        """TRL can train on this data at all (its training set would not be empty)."""
        return self.n_usable > 0


def check_mode(truncation_mode: str) -> None:
    if truncation_mode not in TRUNCATION_MODES:
        raise ValueError(f"truncation_mode must be one of {', '.join(TRUNCATION_MODES)}, got {truncation_mode!r}")


def pair_length(tokenizer, pair: Pair, max_length: int | None,
                truncation_mode: str = DEFAULT_TRUNCATION_MODE) -> PairLength:
    """The token counts TRL sees for ``pair`` (before its collator cuts anything)."""
    check_mode(truncation_mode)
    prompt_ids, chosen_ids, rejected_ids = tokenize_pair(tokenizer, pair)
    return PairLength(prompt=len(prompt_ids), chosen=len(chosen_ids), rejected=len(rejected_ids),
                      max_length=max_length, truncation_mode=truncation_mode)


def length_report(tokenizer, pairs: list[Pair], max_length: int | None,
                  truncation_mode: str = DEFAULT_TRUNCATION_MODE) -> LengthReport:
    lengths = [pair_length(tokenizer, pair, max_length, truncation_mode) for pair in pairs]
    dropped = sum(length.dropped for length in lengths)
    return LengthReport(n_pairs=len(lengths), n_usable=len(lengths) - dropped,
                        n_truncated=sum(length.truncated for length in lengths), n_dropped=dropped,
                        longest_prompt=max((length.prompt for length in lengths), default=0), max_length=max_length,
                        n_tokens=sum(length.trained_tokens for length in lengths))


def trained_sequences(tokenizer, pairs: list[Pair], max_length: int | None,
                      truncation_mode: str = DEFAULT_TRUNCATION_MODE) -> list[tuple[list[int], list[int]]]:
    """(input_ids, completion_mask) of every sequence TRL trains on, in its collator's order per pair
    (prompt+chosen, then prompt+rejected); dropped pairs are left out, as TRL leaves them out."""
    check_mode(truncation_mode)
    if max_length is None:
        cut = slice(None)
    else:
        cut = slice(None, max_length) if truncation_mode == "keep_start" else slice(-max_length, None)
    out = []
    for pair in pairs:
        prompt_ids, chosen_ids, rejected_ids = tokenize_pair(tokenizer, pair)
        if PairLength(len(prompt_ids), len(chosen_ids), len(rejected_ids), max_length, truncation_mode).dropped:
            continue
        for ids in (chosen_ids, rejected_ids):
            sequence, mask = prompt_ids + ids, [0] * len(prompt_ids) + [1] * len(ids)
            out.append((sequence[cut], mask[cut]))
    return out
