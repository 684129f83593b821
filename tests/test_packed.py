"""The packed ("unpadded") forward pass: the same logits as the padded transformers forward, on CPU in fp32."""

from __future__ import annotations

import pytest
import torch

from crossrank.engine.packed import PackedForward

PAIRS = [("what is a cat", "a cat is a small domesticated carnivorous mammal with soft fur"),
         ("capital of france", "paris"),
         ("how do vaccines work", "vaccines train the immune system to recognise a pathogen " * 6),
         ("a", "b")]


def _reference(folder):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(folder, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    inputs = tokenizer([q for q, _ in PAIRS], [d for _, d in PAIRS], padding=True, truncation=True,
                       max_length=128, return_tensors="pt")
    return model, inputs


def test_packed_logits_equal_the_padded_forward_pass(tiny_model):
    model, inputs = _reference(tiny_model)
    assert int(inputs["attention_mask"].sum()) < inputs["attention_mask"].numel()  # there is padding to skip
    with torch.inference_mode():
        expected = model(**inputs).logits
    packed = PackedForward(model)(dict(inputs))
    assert packed.shape == expected.shape
    assert torch.allclose(packed, expected, atol=1e-5), (packed - expected).abs().max()
    # A pair scores the same alone as in the batch.
    alone = PackedForward(model)({k: v[1:2, :int(inputs["attention_mask"][1].sum())] for k, v in inputs.items()})
    assert torch.allclose(alone, expected[1:2], atol=1e-5)


def test_packed_forward_refuses_left_padding_and_unsupported_models(tiny_model):
    model, inputs = _reference(tiny_model)
    flipped = {k: v.flip(1) for k, v in inputs.items()}
    with pytest.raises(ValueError, match="right-padded"):
        PackedForward(model)(flipped)
    model.config.model_type = "deberta-v2"
    with pytest.raises(ValueError, match="no packed forward"):
        PackedForward(model)


def test_packed_roberta_style_positions_match_the_padded_forward_pass():
    from transformers import RobertaConfig, RobertaForSequenceClassification

    torch.manual_seed(0)
    config = RobertaConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                           intermediate_size=64, max_position_embeddings=40, pad_token_id=1, type_vocab_size=1,
                           num_labels=1)
    model = RobertaForSequenceClassification(config).eval()
    lengths = torch.tensor([12, 5, 30, 2, 30, 30])  # 109 packed tokens: more than the 40 positions
    mask = (torch.arange(30) < lengths[:, None]).long()
    ids = torch.randint(3, 100, (6, 30)).masked_fill(mask == 0, 1)  # right-padded with <pad> = 1
    inputs = {"input_ids": ids, "attention_mask": mask}
    with torch.inference_mode():
        expected = model(**inputs).logits
    assert torch.allclose(PackedForward(model)(inputs), expected, atol=1e-5)


def test_cross_encoder_packed_scores_equal_the_padded_engine(tiny_model):
    from crossrank import CrossEncoder
    from crossrank.errors import BackendUnavailableError

    from texts import varied_pairs

    pairs = varied_pairs(80, seed=4) + [("query", "word " * 400)]  # one pair truncated
    padded, packed = CrossEncoder(str(tiny_model)), CrossEncoder(str(tiny_model), packed=True)
    assert packed.backend.packed and not padded.backend.packed
    assert torch.allclose(torch.tensor(packed.score(pairs)), torch.tensor(padded.score(pairs)), atol=1e-5)
    bf16 = CrossEncoder(str(tiny_model), packed=True, dtype="bfloat16").score(pairs)
    assert float(abs(torch.tensor(bf16) - torch.tensor(padded.score(pairs))).max()) < 0.2  # bf16 rounding only
    with pytest.raises(BackendUnavailableError, match="torch-backend"):
        CrossEncoder(str(tiny_model), packed=True, backend="onnx")
