"""Training: each loss falls on a toy task, hard-negative mining rules, checkpoints and resume."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from crossrank import CrossEncoder
from crossrank.errors import InvalidInputError
from crossrank.training.losses import LOSSES, listwise_softmax_ce, margin_mse, pointwise_bce, ranknet
from crossrank.training.negatives import TrainingGroup, build_groups, mine_hard_negatives
from crossrank.training.trainer import TrainConfig, Trainer

WORDS = "apple river museum protein energy novel city water".split()
OFF_TOPIC = "gene cell author train music stone cloud paper".split()


def toy_groups(n=48, negatives=3, seed=0, teacher=False):
    """The positive repeats the query word among on-topic words; negatives are off-topic. Easy to learn."""
    rng = random.Random(seed)
    groups = []
    for i in range(n):
        word = rng.choice(WORDS)
        positive = " ".join([word, word] + rng.sample(WORDS, 3))
        negs = [" ".join(rng.sample(OFF_TOPIC, 5)) for _ in range(negatives)]
        labels = [3.0] + [rng.uniform(-2, 0) for _ in negs] if teacher else [1.0] + [0.0] * negatives
        groups.append(TrainingGroup(str(i), word, [positive, *negs], labels))
    return groups


def test_losses_on_known_values():
    scores = torch.tensor([[2.0, 0.0, -1.0]])
    hard = torch.tensor([[1.0, 0.0, 0.0]])
    expected = -torch.log_softmax(scores, -1)[0, 0]
    assert listwise_softmax_ce(scores, hard) == pytest.approx(float(expected))
    assert ranknet(scores, hard) == pytest.approx(float((torch.nn.functional.softplus(torch.tensor(-2.0)) +
                                                         torch.nn.functional.softplus(torch.tensor(-3.0))) / 2))
    assert margin_mse(scores, scores + 5) == pytest.approx(0.0)
    assert pointwise_bce(torch.tensor([10.0, -10.0]), torch.tensor([1.0, 0.0])) < 1e-3
    soft = listwise_softmax_ce(scores, torch.tensor([[1.5, 0.5, 0.2]]))
    assert soft > 0 and torch.isfinite(soft)


def test_listwise_padding_takes_no_target_mass():
    """A group of 2 padded to 3 inside a batch must score exactly as the group of 2 alone."""
    alone = listwise_softmax_ce(torch.tensor([[2.0, 0.5]]), torch.tensor([[3.0, -1.0]]))
    padded = listwise_softmax_ce(torch.tensor([[2.0, 0.5, -1e4]]), torch.tensor([[3.0, -1.0, 0.0]]),
                                 present=torch.tensor([[True, True, False]]))
    assert float(padded) == pytest.approx(float(alone), abs=1e-6)
    hard = listwise_softmax_ce(torch.tensor([[2.0, 0.5, -1e4]]), torch.tensor([[1.0, 0.0, 0.0]]),
                               present=torch.tensor([[True, True, False]]))
    assert float(hard) == pytest.approx(float(-torch.log_softmax(torch.tensor([2.0, 0.5]), -1)[0]), abs=1e-6)


@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_each_loss_falls_on_a_toy_task(trainable_model, tmp_path, loss):
    groups = toy_groups(teacher=(loss == "margin-mse"))
    config = TrainConfig(loss=loss, epochs=6, learning_rate=5e-3, groups_per_batch=8, warmup_ratio=0.0,
                         max_length=32, seed=0)
    result = Trainer(str(trainable_model), tmp_path / loss, config).train(groups)
    assert result.steps == 36 and len(result.losses) == 36
    first, last = np.mean(result.losses[:4]), np.mean(result.losses[-4:])
    assert last < 0.8 * first, (first, last)
    # The trained folder loads through the public API and ranks the training positives first more often
    # than chance (1 in 4).
    ce = CrossEncoder(str(tmp_path / loss / "best"))
    wins = [ce.score([(g.query, d) for d in g.documents]).argmax() == 0 for g in groups]
    assert np.mean(wins) > 0.4, np.mean(wins)


def test_bf16_training_on_cpu_learns_and_saves_fp32_weights(trainable_model, tmp_path):
    """bf16 autocast on CPU (fast on AMX cores) still learns the toy task; the saved master weights stay fp32."""
    groups = toy_groups()
    config = TrainConfig(loss="listwise", epochs=6, learning_rate=5e-3, groups_per_batch=8, warmup_ratio=0.0,
                         max_length=32, seed=0, precision="bf16")
    result = Trainer(str(trainable_model), tmp_path / "bf16", config).train(groups)
    assert np.mean(result.losses[-4:]) < 0.8 * np.mean(result.losses[:4])
    from safetensors import safe_open

    with safe_open(str(tmp_path / "bf16" / "best" / "model.safetensors"), "pt") as weights:
        assert {weights.get_tensor(k).dtype for k in weights.keys()} == {torch.float32}
    ce = CrossEncoder(str(tmp_path / "bf16" / "best"))
    wins = [ce.score([(g.query, d) for d in g.documents]).argmax() == 0 for g in groups]
    assert np.mean(wins) > 0.4, np.mean(wins)


@pytest.mark.parametrize("precision, device", [("fp8", "cpu"), ("fp16", "cpu")])
def test_precision_is_checked_before_loading(precision, device, tmp_path):
    with pytest.raises(InvalidInputError, match="precision|fp16 training needs a CUDA"):
        Trainer(str(tmp_path / "no-model-here"), tmp_path / "run", TrainConfig(precision=precision), device=device)


def test_dev_evaluation_keeps_the_best_checkpoint_and_resume_continues(trainable_model, tmp_path):
    dev = toy_groups(n=20, seed=5)

    def dev_accuracy(score):
        return float(np.mean([score([(g.query, d) for d in g.documents]).argmax() == 0 for g in dev]))

    config = TrainConfig(loss="listwise", epochs=2, learning_rate=5e-3, groups_per_batch=8, max_length=32,
                         eval_every=3, checkpoint_every=3)
    trainer = Trainer(str(trainable_model), tmp_path / "run", config, dev_metric=dev_accuracy)
    result = trainer.train(toy_groups())
    assert [h["step"] for h in result.dev_history] == [3, 6, 9, 12]
    assert result.best_dev == max(h["metric"] for h in result.dev_history)
    best = CrossEncoder(str(tmp_path / "run" / "best"))
    assert dev_accuracy(best.score) == pytest.approx(result.best_dev)
    assert (tmp_path / "run" / "checkpoint" / "trainer_state.pt").is_file()
    # A longer run resumes from the checkpoint instead of starting over.
    longer = Trainer(str(trainable_model), tmp_path / "run", TrainConfig(**{**config.__dict__, "epochs": 3}),
                     dev_metric=dev_accuracy)
    resumed = longer.train(toy_groups(), resume=True)
    assert resumed.steps == 18 and len(resumed.losses) == 18 and resumed.losses[:12] == result.losses


def test_hard_negative_mining_respects_range_positives_and_guard():
    candidates = {"q1": [f"d{i}" for i in range(1, 31)]}
    qrels = {"q1": {"d12": 1, "d15": 2, "d20": 0}}
    mined = mine_hard_negatives(candidates, qrels, negatives=50, rank_range=(10, 20))
    assert sorted(mined["q1"], key=lambda d: int(d[1:])) == [f"d{i}" for i in range(10, 21) if i not in (12, 15)]
    guarded = mine_hard_negatives(candidates, qrels, negatives=50, rank_range=(10, 20),
                                  guard=lambda q, docs: [0.95 if d == "d11" else 0.1 for d in docs])
    assert "d11" not in guarded["q1"] and len(guarded["q1"]) == len(mined["q1"]) - 1
    few = mine_hard_negatives(candidates, qrels, negatives=3, rank_range=(10, 20), seed=1)
    assert len(few["q1"]) == 3 and few == mine_hard_negatives(candidates, qrels, 3, (10, 20), seed=1)
    groups = build_groups({"q1": "query"}, {f"d{i}": f"text {i}" for i in range(1, 31)}, qrels, few)
    assert [g.documents[0] for g in groups] == ["text 12", "text 15"]
    assert all(g.labels == [1.0, 0.0, 0.0, 0.0] for g in groups)
    # A broad query's many positives are capped to a seeded sample, so it cannot dominate the data.
    broad = {"q1": {f"d{i}": 1 for i in range(1, 9)}, "q2": {"d9": 1}}
    texts = {f"d{i}": f"text {i}" for i in range(1, 31)}
    negs = {"q1": ["d20"], "q2": ["d21"]}
    capped = build_groups({"q1": "a", "q2": "b"}, texts, broad, negs, max_positives=2, seed=3)
    assert [g.query_id for g in capped] == ["q1", "q1", "q2"]
    assert {g.documents[0] for g in capped[:2]} < {f"text {i}" for i in range(1, 9)}
    assert capped == build_groups({"q1": "a", "q2": "b"}, texts, broad, negs, max_positives=2, seed=3)
    assert len(build_groups({"q1": "a", "q2": "b"}, texts, broad, negs)) == 9


def test_beir_groups_keep_only_positives_the_first_stage_retrieves(tmp_path):
    import json

    from crossrank.training.datasets import groups_from_beir

    root = tmp_path / "beir"
    (root / "qrels").mkdir(parents=True)
    docs = {"lex": "aspirin lowers fever", "far": "a cohort of turkey poults", **{f"n{i}": f"aspirin note {i}" for i in range(6)}}
    (root / "corpus.jsonl").write_text("".join(json.dumps({"_id": k, "title": "", "text": v}) + "\n" for k, v in docs.items()))
    (root / "queries.jsonl").write_text(json.dumps({"_id": "q", "text": "aspirin fever"}) + "\n")
    (root / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq\tlex\t1\nq\tfar\t1\n")
    every = groups_from_beir(root, "train", negatives=3, rank_range=(2, 8))
    retrieved = groups_from_beir(root, "train", negatives=3, rank_range=(2, 8), positive_depth=5)
    assert sorted(g.documents[0] for g in every) == [docs["far"], docs["lex"]]
    assert [g.documents[0] for g in retrieved] == [docs["lex"]]  # "far" shares no word: BM25 never returns it
    assert all(docs["far"] not in g.documents[1:] for g in every)  # a judged positive is never a negative


def test_train_command_on_a_beir_folder_and_jsonl(trainable_model, tiny_bi_encoder, tiny_model, tmp_path):
    import json

    from test_cli import run_cli

    rng = random.Random(3)
    root = tmp_path / "beir"
    (root / "qrels").mkdir(parents=True)
    docs = {f"d{i}": " ".join(rng.sample(WORDS + OFF_TOPIC, 6)) for i in range(60)}
    (root / "corpus.jsonl").write_text("".join(json.dumps({"_id": k, "title": "", "text": v}) + "\n"
                                               for k, v in docs.items()))
    (root / "queries.jsonl").write_text("".join(json.dumps({"_id": f"q{i}", "text": w}) + "\n"
                                                for i, w in enumerate(WORDS)))
    lines = ["query-id\tcorpus-id\tscore"] + [f"q{i}\t{d}\t1" for i, w in enumerate(WORDS)
                                              for d, text in docs.items() if w in text.split()][:40]
    (root / "qrels" / "train.tsv").write_text("\n".join(lines) + "\n")
    proc = run_cli(["train", "--data", str(root), "--split", "train", "--dev-split", "train", "--model",
                    str(trainable_model), "--output-dir", str(tmp_path / "out"), "--negatives", "3",
                    "--rank-range", "1", "30", "--max-length", "32", "--epochs", "1", "--lr", "1e-3"])
    assert proc.returncode == 0, proc.stderr.decode()
    report = json.loads(proc.stdout)
    assert report["steps"] >= 1 and report["groups"] > 0 and report["best_dev"] is not None
    assert CrossEncoder(report["best_model"]).score([("apple", "apple river")]).shape == (1,)

    # The same judgments distil a cross-encoder teacher into a bi-encoder.
    proc = run_cli(["distill", "--data", str(root), "--teacher", str(tiny_model), "--student", str(tiny_bi_encoder),
                    "--output-dir", str(tmp_path / "bi"), "--negatives", "3", "--rank-range", "1", "30",
                    "--max-length", "32"])
    assert proc.returncode == 0, proc.stderr.decode()
    report = json.loads(proc.stdout)
    assert report["steps"] >= 1 and (tmp_path / "bi" / "modules.json").is_file()
    from crossrank.model.bi_encoder import BiEncoder

    assert BiEncoder(str(tmp_path / "bi")).encode(["apple"]).shape == (1, 32)

    # Groups already scored by any teacher (here: scaled cosines of a bigger bi-encoder) need no --teacher.
    scored = tmp_path / "scored.jsonl"
    scored.write_text('{"query": "apple", "documents": ["apple apple", "stone", "cloud"], "labels": [18.0, 4.0, 2.0]}\n'
                      '{"query": "river", "documents": ["river water", "paper"], "labels": [16.0, 3.0]}\n')
    proc = run_cli(["distill", "--examples", str(scored), "--student", str(tiny_bi_encoder), "--output-dir",
                    str(tmp_path / "bi2"), "--max-length", "32"])
    assert proc.returncode == 0, proc.stderr.decode()
    assert json.loads(proc.stdout)["groups"] == 2 and (tmp_path / "bi2" / "modules.json").is_file()
    proc = run_cli(["distill", "--examples", str(scored), "--teacher", str(tiny_model), "--output-dir",
                    str(tmp_path / "bi3")])
    assert proc.returncode == 3 and "drop --teacher" in proc.stderr.decode()
    proc = run_cli(["distill", "--output-dir", str(tmp_path / "bi4")])
    assert proc.returncode == 3 and "exactly one of --data" in proc.stderr.decode()

    examples = tmp_path / "ex.jsonl"
    examples.write_text('{"query": "apple", "positive": "apple apple", "negatives": ["stone", "cloud"]}\n'
                        '{"query": "river", "documents": ["river water", "paper"], "labels": [2.0, -1.0]}\n')
    proc = run_cli(["train", "--examples", str(examples), "--model", str(trainable_model), "--output-dir",
                    str(tmp_path / "out2"), "--max-length", "32", "--loss", "listwise"])
    assert proc.returncode == 0, proc.stderr.decode()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "q"}\n')
    proc = run_cli(["train", "--examples", str(bad), "--output-dir", str(tmp_path / "out3")])
    assert proc.returncode == 3 and "bad.jsonl:1: not a training example" in proc.stderr.decode()


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_margin_mse_distillation_moves_the_bi_encoder_towards_the_teacher(tiny_bi_encoder, tmp_path, precision):
    from crossrank.model.bi_encoder import BiEncoder
    from crossrank.ranking.bi_encoder_reranker import BiEncoderReranker
    from crossrank.training.bi_encoder_distillation import DistillConfig, distil_bi_encoder, teacher_groups

    groups = toy_groups(n=48, negatives=3, seed=2)

    def teacher(pairs):  # a "cross-encoder" that knows the task: the query word repeated in the document
        return np.array([4.0 * d.split().count(q) for q, d in pairs])

    scored = teacher_groups(groups, teacher)
    assert scored[0].documents == groups[0].documents
    assert scored[0].labels == list(teacher([(groups[0].query, d) for d in groups[0].documents]))
    assert scored[0].labels[0] >= 8.0 and max(scored[0].labels[1:]) == 0.0

    def margin_error(folder):
        bi = BiEncoderReranker(BiEncoder(str(folder)))
        student = [20.0 * bi.score([(g.query, d) for d in g.documents]) for g in scored]
        return float(np.mean([((s[0] - s[1:]) - (g.labels[0] - np.array(g.labels[1:]))) ** 2
                              for s, g in zip(student, scored)]))

    before = margin_error(tiny_bi_encoder)
    config = DistillConfig(epochs=8, learning_rate=2e-3, groups_per_batch=8, warmup_ratio=0.0, max_length=32,
                           precision=precision)
    result = distil_bi_encoder(tiny_bi_encoder, scored, tmp_path / "student", config)
    assert result.steps == 48 and np.mean(result.losses[-6:]) < 0.7 * np.mean(result.losses[:6])
    assert margin_error(tmp_path / "student") < 0.7 * before
    with pytest.raises(ValueError, match="negative"):
        distil_bi_encoder(tiny_bi_encoder, [TrainingGroup("q", "q", ["only"], [1.0])], tmp_path / "x")
    with pytest.raises(InvalidInputError, match="fp16"):
        distil_bi_encoder(tiny_bi_encoder, scored, tmp_path / "y", DistillConfig(precision="fp16"))
