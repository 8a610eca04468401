"""Framework-free valuation core.

Everything under this package works on dataclasses, numpy arrays and paths, so it
can run in a notebook, a Celery worker or a benchmark without Django. Nothing
here may import django (tests/valuation/engine/test_no_django.py enforces it).

Modules, by the order a round uses them:
    synthetic   demo domain with known data quality (corpus, owners, eval set, judges)
    base_model  train the tiny byte-level BPE + Llama-style reference model
    runtime     device and precision; what a worker keeps warm between fine-tunes and scoring passes
    dpo         one owner's DPO fine-tune with TRL
    scoring     cached response log-probs under the base model and each owner model
    lengths     what TRL trains on per pair: tokens kept after truncation, pairs it drops
    arithmetic  coalition composition weights (language-model arithmetic)
    utility     coalition utilities from the cached score matrix
    coalition_tables  the tiled kernels that tabulate all 2^n utilities
    shapley     exact Shapley values over the 2^n table; estimate_shapley (exact or sampled)
    sampling    budget, error bars and the misallocation stopping rule shared by estimators
    structured  the structured estimator for score games: analytic prior + control variates
    smoothed    Gaussian-smoothed utilities of a margin (what the structured prior integrates)
    estimators  permutation sampling (antithetic and plain)
    svarm       stratified SVARM
    kernelshap  paired KernelSHAP
    semivalues  Beta Shapley, Banzhaf, leave-one-out; sampled by weighted MSR
    interactions  pairwise Shapley interaction index (redundant / complementary owners)
    policies    π₀ and the owner models loaded once (LoRA owners on one shared base)
    decoding    sampling from a coalition by token-level arithmetic (the `reward` utility)
    judges      what scores a generated response: a callable or a reward-model directory
    reward      the `reward` utility: each coalition decoded once, judged per objective
    payouts     turn values into exact currency amounts
    representations  mean-pooled base-model embeddings of pairs, cached by (base model, pair) hash
    pair_classifier  the cheap utility: a Bradley–Terry classifier on pair features
    pair_values TS-DShapley: pair values from truncated permutation Shapley inside sampled chains
    curation    SHED: k-means clusters, proxy Shapley values, QOCS / QWCS curated subsets
    data_quality  the data-quality assessment a round runs: values, flags with reasons, clusters
"""

import os

# Idle OpenMP threads sleep instead of spinning, set before anything here imports torch: on a shared
# machine spinning threads slow a fine-tune ~2-3x (base_model.threads_to_use). An explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

