"""The stages of a round, in order: training → scoring → screening → valuing (see each module), then the
opt-in data-quality stage (pair values and clusters; it never changes values or payouts).

Each stage is idempotent and checkpointed in the database: it skips work that is
already done, so a round killed anywhere resumes with the same result. Engine
imports are inside functions, so the web process never pays for torch.
"""
from .common import (eval_pairs, eval_set_hash, model_dir_hash, owner_pairs, owner_rows, pairs_digest, prompt_format,
                     round_config, uses_chat)
from .scoring import run_scoring, score_matrix
from .training import owner_model_key, run_training
from .valuing import run_valuing
from .data_quality import data_quality_config, run_data_quality
from .screening import run_screening, screening_config

__all__ = [
    "eval_pairs", "eval_set_hash", "model_dir_hash", "owner_pairs", "owner_rows", "pairs_digest", "prompt_format",
    "round_config", "uses_chat",
    "run_scoring", "score_matrix", "owner_model_key", "run_training", "run_valuing",
    "data_quality_config", "run_data_quality", "run_screening", "screening_config",
]
