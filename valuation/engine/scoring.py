"""Cached response log-probs: log pi(y|x) summed over response tokens, for every eval pair.

docs/design.md section 2: after n fine-tunes, (n + 1) scoring passes over the eval set give
delta_i(x, y) = log pi_i(y|x) - log pi_0(y|x) for every eval response, and every
exact coalition utility is array arithmetic on the (n x T) matrix
D[i, t] = delta_i(x_t, y_w) - delta_i(x_t, y_l) (the log Z_S(x) of language-model
arithmetic cancels in this margin). No model is touched again after this module.

Tokenisation follows TRL's DPOTrainer exactly (trl/trainer/dpo_trainer.py,
`_prepare_dataset` and `DataCollatorForPreference`): EOS is appended to each plain-text
response unless already there (a conversational pair goes through the chat template
instead, its prompt with the generation prompt, and gets no EOS), prompt,
prompt+chosen and prompt+rejected are tokenised
separately, the response starts where the tokenised prompt stops being a common prefix
of both, and sequences are cut at `max_length` keeping the start. So these numbers
equal TRL's `logps/chosen` and `logps/rejected`.

`score_model` reuses the worker's warm base model, tokenizer and tokenised eval set
(runtime.py): a round's n + 1 passes tokenise the eval set once and read the base
model's files once.

Batches are padded to their longest sequence. ``order="length"`` batches the chosen and
rejected sequences together, longest first, so a batch holds sequences of similar length
and little padding; ``order="input"`` keeps the eval set's order, chosen sequences first.
The two agree to float noise (up to 3e-5 of a summed log-prob on SmolLM2,
bench/score_order.py), not bit for bit (a batch's width changes the float summation
order), so a round records its order and a replay scores the same way.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import runtime as rt
from .base_model import load_base_model, load_tokenizer, torch_threads
from .data import Pair, as_dicts


@dataclass(frozen=True)
class ScoreResult:
    chosen: np.ndarray  # float64 (T,): log pi(y_w | x) per eval pair
    rejected: np.ndarray  # float64 (T,): log pi(y_l | x) per eval pair

    @property
    def margin(self) -> np.ndarray:
        return self.chosen - self.rejected


def is_adapter_dir(model_dir: str | Path) -> bool:
    """True when ``model_dir`` holds a PEFT adapter rather than a full model."""
    return (Path(model_dir) / "adapter_config.json").is_file()


def load_policy(model_dir: str | Path, base_dir: str | Path | None = None):
    """A full model directory, or a PEFT adapter directory applied to the model in ``base_dir``."""
    if not is_adapter_dir(model_dir):
        return load_base_model(model_dir)
    if base_dir is None:
        raise ValueError(f"{model_dir} holds a PEFT adapter; pass the base model directory it was trained on")
    from peft import PeftModel

    # Unmerged, so the forward is the very one TRL trained and evaluated.
    return PeftModel.from_pretrained(load_base_model(base_dir), str(model_dir)).eval()


def _common_prefix_length(ids: list[int], other: list[int]) -> int:
    length = 0
    for token, other_token in zip(ids, other):
        if token != other_token:
            break
        length += 1
    return length


def _chat_ids(tokenizer, messages, *, add_generation_prompt: bool = False) -> list[int]:
    """Token ids of a conversation through the tokenizer's chat template, called as TRL's `_tokenize` calls it."""
    return tokenizer.apply_chat_template(as_dicts(messages), tools=None, add_generation_prompt=add_generation_prompt,
                                         tokenize=True, return_dict=True)["input_ids"]


def _full_ids(tokenizer, pair: Pair) -> tuple[list[int], list[int], list[int]]:
    """Token ids of prompt, prompt+chosen and prompt+rejected, before the response is split off."""
    if pair.conversational:
        # No EOS is appended: the template closes each turn itself (TRL adds EOS to text pairs only).
        return (_chat_ids(tokenizer, pair.prompt, add_generation_prompt=True),
                _chat_ids(tokenizer, pair.prompt + pair.chosen), _chat_ids(tokenizer, pair.prompt + pair.rejected))
    eos = tokenizer.eos_token
    chosen = pair.chosen if pair.chosen.endswith(eos) else pair.chosen + eos
    rejected = pair.rejected if pair.rejected.endswith(eos) else pair.rejected + eos
    return (tokenizer(text=pair.prompt)["input_ids"], tokenizer(text=pair.prompt + chosen)["input_ids"],
            tokenizer(text=pair.prompt + rejected)["input_ids"])


def tokenize_pair(tokenizer, pair: Pair) -> tuple[list[int], list[int], list[int]]:
    """(prompt_ids, chosen_ids, rejected_ids) exactly as TRL's DPOTrainer builds them (text or conversational)."""
    prompt_ids, prompt_chosen, prompt_rejected = _full_ids(tokenizer, pair)
    prompt_len = min(
        _common_prefix_length(prompt_ids, prompt_chosen), _common_prefix_length(prompt_ids, prompt_rejected)
    )
    return prompt_ids[:prompt_len], prompt_chosen[prompt_len:], prompt_rejected[prompt_len:]


def tokenize_sequences(tokenizer, pairs: list[Pair], max_length: int | None):
    """Per pair two (input_ids, response_mask) sequences: prompt+chosen, prompt+rejected."""
    chosen, rejected = [], []
    for pair in pairs:
        prompt_ids, chosen_ids, rejected_ids = tokenize_pair(tokenizer, pair)
        for ids, out in ((chosen_ids, chosen), (rejected_ids, rejected)):
            sequence = (prompt_ids + ids)[:max_length]
            mask = ([0] * len(prompt_ids) + [1] * len(ids))[:max_length]
            out.append((sequence, mask))
    return chosen, rejected


def _batch_logps(model, batch: list[tuple[list[int], list[int]]], pad_id: int) -> np.ndarray:
    """Summed response-token log-probs of right-padded sequences (padding never changes a real position)."""
    import torch

    width = max(len(ids) for ids, _ in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(batch), width), dtype=torch.long)
    response = torch.zeros((len(batch), width), dtype=torch.bool)
    for row, (ids, mask) in enumerate(batch):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        attention[row, : len(ids)] = 1
        response[row, : len(ids)] = torch.tensor(mask, dtype=torch.bool)
    device = model.device
    input_ids, attention, response = input_ids.to(device), attention.to(device), response.to(device)
    logits = model(input_ids=input_ids, attention_mask=attention, use_cache=False).logits
    # float64 log-softmax: the sums over ~30 tokens stay batch-size independent to 1e-6.
    logps = torch.log_softmax(logits[:, :-1].double(), dim=-1)
    token_logps = logps.gather(-1, input_ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    return (token_logps * response[:, 1:]).sum(dim=1).cpu().numpy()


SCORE_ORDERS = ("input", "length")


def _check_order(order: str) -> None:
    if order not in SCORE_ORDERS:
        raise ValueError(f"order must be one of {', '.join(SCORE_ORDERS)}, got {order!r}")


def _logps(model, sequences, pad_id: int, batch_size: int) -> np.ndarray:
    parts = [_batch_logps(model, sequences[i : i + batch_size], pad_id) for i in range(0, len(sequences), batch_size)]
    return np.concatenate(parts).astype(np.float64) if parts else np.zeros(0, dtype=np.float64)


def _logps_by_length(model, sequences, pad_id: int, batch_size: int) -> np.ndarray:
    """``_logps`` of ``sequences`` batched longest first (ties in input order), returned in input order."""
    order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i][0]))
    values = _logps(model, [sequences[i] for i in order], pad_id, batch_size)
    out = np.empty(len(sequences), dtype=np.float64)
    out[order] = values
    return out


def sequence_logps(
    model_dir_or_loaded, tokenizer, pairs: list[Pair], *, batch_size: int = 16, max_length: int | None = None,
    runtime: rt.Runtime | None = None, order: str = "input",
) -> tuple[np.ndarray, np.ndarray]:
    """(chosen_logps, rejected_logps), float64 arrays of length len(pairs).

    ``model_dir_or_loaded`` is a loaded causal LM or a full-model directory;
    ``tokenizer`` may be None for a directory that holds its tokenizer. Pass the
    training ``max_length`` to reproduce TRL's truncation of over-long pairs.
    """
    if isinstance(model_dir_or_loaded, (str, Path)):
        tokenizer = tokenizer or load_tokenizer(model_dir_or_loaded)
        model_dir_or_loaded = load_policy(model_dir_or_loaded)
    chosen, rejected = tokenize_sequences(tokenizer, list(pairs), max_length)
    return sequences_logps(model_dir_or_loaded, tokenizer, chosen, rejected, batch_size=batch_size, runtime=runtime,
                           order=order)


def sequences_logps(model, tokenizer, chosen, rejected, *, batch_size: int = 16, runtime: rt.Runtime | None = None,
                    order: str = "input"):
    """Log-probs of already tokenised (chosen, rejected) sequences (``tokenize_sequences``) under ``model``,
    batched in ``order`` (module docstring)."""
    import torch

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    _check_order(order)
    runtime = runtime or rt.Runtime()
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), torch_threads(runtime.threads), runtime.autocast():
            pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
            if order == "input":
                return _logps(model, chosen, pad_id, batch_size), _logps(model, rejected, pad_id, batch_size)
            both = _logps_by_length(model, list(chosen) + list(rejected), pad_id, batch_size)
            return both[: len(chosen)], both[len(chosen) :]
    finally:
        model.train(was_training)


def score_model(
    model_dir: str | Path,
    base_dir: str | Path | None,
    pairs: list[Pair],
    *,
    batch_size: int = 16,
    max_length: int | None = None,
    runtime: rt.Runtime | None = None,
    order: str = "input",
) -> ScoreResult:
    """Log-probs of every pair's responses under the model in ``model_dir`` (full model or adapter).

    Score the base model itself with ``model_dir == base_dir``. The tokenizer is always
    the base model's, so every model sees identical token ids.
    """
    _check_order(order)  # before any model is read
    runtime = runtime or rt.Runtime.from_env()
    runtime.check_device()
    tokenizer_dir = base_dir if base_dir is not None else model_dir
    chosen_ids, rejected_ids = rt.eval_sequences(tokenizer_dir, pairs, max_length)
    with _warm_policy(model_dir, base_dir, runtime) as model:
        chosen, rejected = sequences_logps(model, rt.tokenizer(tokenizer_dir), chosen_ids, rejected_ids,
                                           batch_size=batch_size, runtime=runtime, order=order)
    return ScoreResult(chosen=chosen, rejected=rejected)


@contextlib.contextmanager
def _warm_policy(model_dir, base_dir, runtime: rt.Runtime):
    """``load_policy``, but the base model comes from the worker's memory instead of its files. On a CPU
    worker the base and every adapter are read on the one shared base model (no copy of it per pass)."""
    same_as_base = base_dir is not None and Path(model_dir).resolve() == Path(base_dir).resolve()
    if same_as_base and runtime.device == "cpu":
        yield rt.shared_base_model(base_dir)  # read-only use: no copy needed
    elif same_as_base:
        yield rt.base_model_copy(base_dir).to(runtime.device)
    elif is_adapter_dir(model_dir):
        if base_dir is None:
            raise ValueError(f"{model_dir} holds a PEFT adapter; pass the base model directory it was trained on")
        if runtime.device == "cpu":
            with rt.adapter_on_shared_base(base_dir, model_dir) as model:
                yield model
        else:
            from peft import PeftModel

            yield PeftModel.from_pretrained(rt.base_model_copy(base_dir), str(model_dir)).eval().to(runtime.device)
    else:
        yield load_base_model(model_dir).to(runtime.device)


def delta_matrix(base: ScoreResult, owners: list[ScoreResult]) -> np.ndarray:
    """D (n x T): D[i, t] = (chosen_i - chosen_0) - (rejected_i - rejected_0), the owner's log-ratio margin."""
    if not owners:
        return np.zeros((0, len(base.chosen)), dtype=np.float64)
    for index, owner in enumerate(owners):
        if owner.chosen.shape != base.chosen.shape or owner.rejected.shape != base.rejected.shape:
            raise ValueError(f"owner {index} was scored on {owner.chosen.shape[0]} pairs, the base on {base.chosen.shape[0]}")
    chosen = np.stack([owner.chosen for owner in owners]) - base.chosen
    rejected = np.stack([owner.rejected for owner in owners]) - base.rejected
    return (chosen - rejected).astype(np.float64)
