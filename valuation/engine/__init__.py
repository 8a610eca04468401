"""Framework-free valuation core.

Everything under this package works on dataclasses, numpy arrays and paths, so it
can run in a notebook, a Celery worker or a benchmark without Django. Nothing
here may import django (tests/valuation/engine/test_no_django.py enforces it).

Modules, by the order a round uses them:
    synthetic   demo domain with known data quality (corpus, owners, eval set, judges)
    base_model  train the tiny byte-level BPE + Llama-style reference model
    dpo         one owner's DPO fine-tune with TRL
    scoring     cached response log-probs under the base model and each owner model
    arithmetic  coalition composition weights (language-model arithmetic)
    utility     coalition utilities from the cached score matrix
    shapley     Shapley values over the 2^n utility table
    payouts     turn values into exact currency amounts
"""
