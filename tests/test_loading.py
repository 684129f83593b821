"""Model loading: local folders, safe weights, sentence-transformers settings, and clear errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from crossrank import CrossEncoder, ModelLoadError
from crossrank.errors import BackendUnavailableError

from conftest import build_tiny_bert


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(ModelLoadError, match=f"model folder {tmp_path / 'nope'} does not exist"):
        CrossEncoder(str(tmp_path / "nope"))


def test_file_instead_of_folder(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(ModelLoadError, match="is a file, not a folder"):
        CrossEncoder(str(tmp_path / "weights.bin"))


def test_folder_without_weights(tiny_model, tmp_path):
    folder = tmp_path / "noweights"
    shutil.copytree(tiny_model, folder)
    (folder / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match=f"{folder} has no weights"):
        CrossEncoder(str(folder))


def test_folder_without_config(tmp_path):
    (tmp_path / "m").mkdir()
    with pytest.raises(ModelLoadError, match="has no config.json"):
        CrossEncoder(str(tmp_path / "m"))


def test_encoder_without_classification_head_is_refused(tmp_path):
    from transformers import BertConfig, BertModel

    folder = tmp_path / "encoder"
    BertModel(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                         intermediate_size=64)).save_pretrained(folder)
    with pytest.raises(ModelLoadError, match="not a sequence-classification cross-encoder.*BertModel"):
        CrossEncoder(str(folder))


def test_checkpoint_lacking_the_head_tensors_is_refused(tiny_model, tmp_path):
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "headless"
    shutil.copytree(tiny_model, folder)
    state = {k: v for k, v in load_file(folder / "model.safetensors").items() if not k.startswith("classifier")}
    save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ModelLoadError, match="classifier"):
        CrossEncoder(str(folder))


def test_three_label_classifier_is_refused(tmp_path):
    folder = build_tiny_bert(tmp_path / "nli", num_labels=3)
    with pytest.raises(ModelLoadError, match="3 labels"):
        CrossEncoder(str(folder))


def test_pickled_bin_checkpoint_loads_with_weights_only(tiny_model, tmp_path):
    folder = build_tiny_bert(tmp_path / "bin", safetensors=False)
    assert (folder / "pytorch_model.bin").is_file() and not (folder / "model.safetensors").exists()
    pairs = [("q", "a document"), ("another query", "text")]
    np.testing.assert_allclose(CrossEncoder(str(folder)).score(pairs), CrossEncoder(str(tiny_model)).score(pairs),
                               atol=1e-6)


def test_pickled_bin_with_arbitrary_objects_is_refused(tiny_model, tmp_path):
    folder = tmp_path / "evil"
    shutil.copytree(tiny_model, folder)
    (folder / "model.safetensors").unlink()
    torch.save({"payload": Exception("not a tensor")}, folder / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="cannot load weights"):
        CrossEncoder(str(folder))


def test_unreachable_hub_says_offline_and_suggests_a_local_folder(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="(?s)could not fetch model 'cross-encoder/no-such-model'.*offline.*local folder"):
        CrossEncoder("cross-encoder/no-such-model")


def test_sentence_transformers_settings_are_honoured(tiny_model, tmp_path):
    folder = tmp_path / "st"
    shutil.copytree(tiny_model, folder)
    config = json.loads((folder / "config.json").read_text())
    config["sentence_transformers"] = {"activation_fn": "torch.nn.modules.activation.Sigmoid", "version": "5.0.0"}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 128}))
    ce = CrossEncoder(str(folder))
    assert ce.activation == "sigmoid" and ce.max_length == 128
    pairs = [("q", "a document"), ("q", "b")]
    raw = ce.score(pairs)
    np.testing.assert_allclose(ce.predict(pairs), 1 / (1 + np.exp(-raw.astype(np.float64))), atol=1e-7)
    assert CrossEncoder(str(folder), max_length=256).max_length == 256


def test_max_length_beyond_positions_is_refused(tmp_path):
    folder = build_tiny_bert(tmp_path / "short", max_position_embeddings=64)
    assert CrossEncoder(str(folder)).max_length == 64
    with pytest.raises(ModelLoadError, match="exceeds the 64 positions"):
        CrossEncoder(str(folder), max_length=128)


def test_unknown_backend_and_missing_device(tiny_model):
    with pytest.raises(BackendUnavailableError, match="unknown backend 'tvm'"):
        CrossEncoder(str(tiny_model), backend="tvm")
    if not torch.cuda.is_available():
        with pytest.raises(BackendUnavailableError, match="CUDA is not available"):
            CrossEncoder(str(tiny_model), device="cuda")


def test_roberta_style_model_without_token_types(tmp_path):
    """A byte-level BPE tokenizer and RoBERTa's <s> q </s></s> d </s> template work unchanged."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers, decoders
    from transformers import PreTrainedTokenizerFast, RobertaConfig, RobertaForSequenceClassification

    from texts import varied_pairs
    from test_fidelity import reference_scores

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    tok.train_from_iterator([q + " " + d for q, d in varied_pairs(200, seed=2)], trainer)
    tok.post_processor = processors.RobertaProcessing(("</s>", tok.token_to_id("</s>")), ("<s>", tok.token_to_id("<s>")))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", sep_token="</s>",
                                   cls_token="<s>", pad_token="<pad>", unk_token="<unk>", mask_token="<mask>",
                                   model_input_names=["input_ids", "attention_mask"], model_max_length=128)
    torch.manual_seed(0)
    config = RobertaConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, num_hidden_layers=2,
                           num_attention_heads=4, intermediate_size=64, max_position_embeddings=130,
                           pad_token_id=1, bos_token_id=0, eos_token_id=2, type_vocab_size=1, num_labels=1)
    model = RobertaForSequenceClassification(config)
    with torch.no_grad():
        model.classifier.out_proj.weight.mul_(50)
    folder = tmp_path / "roberta"
    model.save_pretrained(folder)
    fast.save_pretrained(folder)

    ce = CrossEncoder(str(folder))
    assert ce.max_length == 128 and not ce.tokenizer.uses_token_types
    pairs = varied_pairs(60, seed=9)
    np.testing.assert_allclose(ce.score(pairs), reference_scores(folder, pairs, max_length=128), atol=1e-4)
    ids = ce.tokenizer(["hello"], ["world"]).input_ids[0]
    assert ids[0] == 0 and ids[-1] == 2 and ids.count(2) == 3  # <s> q </s></s> d </s>


def test_default_model_is_the_shipped_trained_reranker_and_loads_offline(monkeypatch):
    import json

    from crossrank.model.default import DEFAULT_MODEL_DIR

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ce = CrossEncoder()
    assert ce.model_dir == DEFAULT_MODEL_DIR
    weights = DEFAULT_MODEL_DIR / "model.safetensors"
    assert weights.stat().st_size < 50e6  # small enough to live in the repository (fp16)
    assert json.loads((DEFAULT_MODEL_DIR / "config.json").read_text())["dtype"] == "float16"
    card = (DEFAULT_MODEL_DIR / "README.md").read_text()
    assert "## Training data" in card and "## Results" in card and "recipes/default_reranker" in card
    assert ce.backend.model.dtype == torch.float32  # computed in fp32 on CPU
    # It actually ranks: on plain web-style questions the answering passage comes first.
    cases = [
        ("how many people live in berlin", ["The recipe needs two eggs, flour and a pinch of salt.",
                                            "Berlin has a population of about 3.7 million inhabitants.",
                                            "Paris is the capital of France."]),
        ("what is the boiling point of water", ["Water boils at 100 degrees Celsius at sea level.",
                                                 "The stock market closed higher on Friday.",
                                                 "Penguins live in the southern hemisphere."]),
        ("symptoms of vitamin d deficiency", ["Vitamin D deficiency can cause bone pain, fatigue and muscle weakness.",
                                              "The football match ended in a draw.",
                                              "Rome was not built in a day."]),
    ]
    for (query, docs), answer in zip(cases, [1, 0, 0]):
        best = ce.rerank(query, docs)[0]
        assert best.index == answer, (query, best)
        assert 0.0 <= best.probability <= 1.0
    again = CrossEncoder()
    pairs = [(cases[0][0], cases[0][1][1])]
    assert again.score(pairs)[0] == ce.score(pairs)[0]
