"""The model card reads a directory's architecture, size and chat template without loading weights."""
from __future__ import annotations

import json

import pytest

from valuation.engine import model_card


def _tiny_llama_dir(path, tiny_tokenizer_dir):
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=2, intermediate_size=32,
                                         max_position_embeddings=96))
    model.save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return model


def test_card_counts_parameters_from_headers(tmp_path, tiny_tokenizer_dir):
    model = _tiny_llama_dir(tmp_path, tiny_tokenizer_dir)
    card = model_card.describe(tmp_path)
    assert card.n_parameters == sum(p.numel() for p in model.parameters())
    assert (card.architecture, card.context_length, card.dtype) == ("LlamaForCausalLM", 96, "float32")
    assert card.has_chat_template is False


def test_chat_template_is_found_in_either_place(tmp_path, tiny_tokenizer_dir):
    _tiny_llama_dir(tmp_path, tiny_tokenizer_dir)
    (tmp_path / "chat_template.jinja").write_text("{% for m in messages %}{{ m['content'] }}{% endfor %}")
    assert model_card.describe(tmp_path).has_chat_template
    (tmp_path / "chat_template.jinja").unlink()
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(dict(config, chat_template="{{ 1 }}")))
    assert model_card.has_chat_template(tmp_path)


def test_not_a_model_directory_says_what_is_missing(tmp_path):
    with pytest.raises(ValueError, match="no config.json"):
        model_card.describe(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="no safetensors weights"):
        model_card.describe(tmp_path)
    (tmp_path / "model.safetensors").write_bytes((2**40).to_bytes(8, "little"))
    with pytest.raises(ValueError, match="not a safetensors file"):
        model_card.describe(tmp_path)
