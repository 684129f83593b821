"""Default reranker v2 recipe pieces on tiny models and tiny data: teacher scoring (cached, resumable) and
the pseudo-pair pool."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "default_reranker_v2"
sys.path.insert(0, str(RECIPE))

from teachers import BiEncoderTeacher, TeacherSpec  # noqa: E402


@pytest.fixture()
def teacher_spec(tiny_model) -> TeacherSpec:
    return TeacherSpec("tiny", str(tiny_model), "query: ", "passage: ", max_length=64)


def test_a_teacher_scores_by_cosine_and_caches_every_text(teacher_spec, tmp_path):
    pairs = [("what is a cat", "a cat is a small animal"), ("what is a cat", "stocks fell on monday"),
             ("capital of france", "paris is the capital of france")]
    teacher = BiEncoderTeacher(teacher_spec, tmp_path, tmp_path / "cache")
    scores = teacher.score(pairs)
    assert scores.shape == (3,) and np.all(np.abs(scores) <= 1.0 + 1e-3)  # cosines of normalised vectors
    queries = teacher.embed([q for q, _ in pairs], "query: ")
    assert np.allclose(np.linalg.norm(queries, axis=1), 1.0, atol=1e-2)
    assert np.allclose(queries[0], queries[1])  # the same text, one cached vector
    # Prefixes matter: the same text as a passage is another vector.
    assert not np.allclose(teacher.embed(["what is a cat"], "passage: ")[0], queries[0])
    cached = BiEncoderTeacher(teacher_spec, tmp_path, tmp_path / "cache")
    assert len(cached.cache) == 5 + 1  # 2 distinct queries + 3 passages + the extra passage-form query
    cached.model = None  # nothing left to compute: a call that needed the model would fail
    assert np.allclose(cached.score(pairs), scores, atol=1e-3)


def test_the_pool_holds_wikiqa_groups_with_judgments_and_every_teachers_scores(teacher_spec, tmp_path, monkeypatch):
    import build_pool
    import teachers

    data = tmp_path / "data"
    wikiqa = data / "wikiqa"
    (wikiqa / "qrels").mkdir(parents=True)
    (wikiqa / "queries.jsonl").write_text("\n".join(json.dumps({"_id": q, "text": t}) for q, t in
                                                    [("Q1", "how tall is everest"), ("Q2", "who wrote hamlet")]))
    docs = {"D1-0": "Everest is 8,849 metres tall.", "D1-1": "Nepal has many valleys.",
            "D2-0": "Hamlet was written by Shakespeare.", "D2-1": "Denmark is a country."}
    (wikiqa / "corpus.jsonl").write_text("\n".join(json.dumps({"_id": d, "title": "", "text": t})
                                                   for d, t in docs.items()))
    (wikiqa / "qrels" / "train.tsv").write_text(
        "query-id\tcorpus-id\tscore\nQ1\tD1-0\t1\nQ1\tD1-1\t0\nQ2\tD2-0\t1\nQ2\tD2-1\t0\n")
    groups = build_pool.wikiqa_groups(data)
    assert [g["query"] for g in groups] == ["how tall is everest", "who wrote hamlet"]
    assert groups[0]["judgments"] == [1, 0] and groups[0]["documents"][0].startswith("Everest")

    monkeypatch.setitem(teachers.TEACHERS, "tiny", teacher_spec)
    monkeypatch.setattr(build_pool, "msmarco_groups", lambda *args: [])
    output = tmp_path / "pool.jsonl"
    monkeypatch.setattr(sys, "argv", ["build_pool", "--data", str(data), "--teachers-dir", str(tmp_path),
                                      "--teachers", "tiny", "--output", str(output), "--cache", str(tmp_path / "c")])
    build_pool.main()
    written = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(written) == 2 and len(written[0]["teachers"]["tiny"]) == 2
    direct = BiEncoderTeacher(teacher_spec, tmp_path, tmp_path / "c").score([("who wrote hamlet", docs["D2-0"])])
    assert written[1]["teachers"]["tiny"][0] == pytest.approx(float(direct[0]), abs=1e-3)


def pool_row(query: str, docs: list[str], mpnet: list[float], e5: list[float]) -> dict:
    return {"query": query, "documents": docs, "teachers": {"mpnet": mpnet, "e5": e5},
            "source": "msmarco-dev-small"}


def test_distillation_groups_keep_the_teachers_top_and_label_by_the_weighted_z_scores():
    from make_examples import distill_groups, ensemble_scores

    docs = [f"passage {i}" for i in range(8)]
    mpnet = [0.9, 0.1, 0.5, 0.2, 0.3, 0.0, 0.4, 0.6]
    e5 = [0.8, 0.7, 0.1, 0.2, 0.3, 0.0, 0.4, 0.5]
    combined = ensemble_scores({"mpnet": mpnet, "e5": e5}, {"mpnet": 0.6, "e5": 0.4})
    z = lambda v: (np.array(v) - np.mean(v)) / np.std(v)  # noqa: E731
    assert np.allclose(combined, 0.6 * z(mpnet) + 0.4 * z(e5), atol=1e-6)
    groups = distill_groups([pool_row("q", docs, mpnet, e5)], {"mpnet": 0.6, "e5": 0.4}, top=2, sampled=3,
                            temperature=0.5, seed=0)
    (group,) = groups
    best_two = [docs[i] for i in np.argsort(-combined)[:2]]
    assert group["documents"][:2] == best_two and len(group["documents"]) == 5
    assert len(set(group["documents"])) == 5  # sampled without repeats
    index = docs.index(group["documents"][3])
    assert group["labels"][3] == pytest.approx(combined[index] / 0.5, abs=1e-3)


def test_wikiqa_groups_put_the_positive_on_top_and_cutting_keeps_the_best():
    from make_examples import cut_to, wikiqa_groups

    row = {"query": "who wrote hamlet", "documents": ["Shakespeare wrote it.", "Denmark.", "A play.", "Ghosts."],
           "judgments": [1, 0, 0, 0], "source": "wikiqa-train"}
    no_answer = {**row, "judgments": [0, 0, 0, 0]}
    groups = wikiqa_groups([row, no_answer], size=3, seed=0)
    assert len(groups) == 1  # a question without a correct sentence teaches nothing listwise
    assert groups[0]["documents"][0] == "Shakespeare wrote it." and groups[0]["labels"][0] == 10.0
    assert sorted(groups[0]["labels"]) == [0.0, 0.0, 10.0]
    small = wikiqa_groups([row], size=12, seed=0)[0]
    assert len(small["documents"]) == 4  # fewer candidates than the group size: kept, never repeated
    short = [{"query": "q", "documents": ["a", "b"], "labels": [5.0, 1.0], "source": "x"}]
    assert cut_to(short, 4, seed=0)[0]["documents"] == ["a", "b"]
    long = [{"query": "q", "documents": list("abcdef"), "labels": [0, 0, 9, 0, 0, 0], "source": "x"}]
    cut = cut_to(long, 3, seed=0)[0]
    assert len(cut["documents"]) == 3 and cut["documents"][0] == "c"  # the best document is never cut


def test_dl2021_groups_are_graded_and_anchored_on_the_best_grade(tmp_path):
    from make_examples import dl2021_groups

    folder = tmp_path / "trec-dl-2021"
    (folder / "qrels").mkdir(parents=True)
    (folder / "queries.jsonl").write_text(json.dumps({"_id": "1", "text": "define osmosis"}))
    grades = {"p0": 3, "p1": 2, "p2": 1, "p3": 0, "p4": 0, "missing": 3}
    (folder / "corpus.jsonl").write_text("\n".join(json.dumps({"_id": d, "title": "", "text": f"text of {d}"})
                                                   for d in grades if d != "missing"))
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" +
                                               "".join(f"1\t{d}\t{g}\n" for d, g in grades.items()))
    (group,) = dl2021_groups(tmp_path, size=4, grade_scale=2.0, per_query=5, seed=0)
    assert group["documents"][0] == "text of p0" and group["labels"][0] == 6.0  # the only grade-3 with text
    assert all(label == 2.0 * grades[d.removeprefix("text of ")] for d, label in
               zip(group["documents"], group["labels"]))


def test_the_fallback_starts_from_chosen_layers_of_the_default(tiny_model, tmp_path):
    import torch
    from make_fallback import keep_layers
    from transformers import AutoModelForSequenceClassification

    out = keep_layers(tiny_model, tmp_path / "one-layer", [1])
    small = AutoModelForSequenceClassification.from_pretrained(out)
    full = AutoModelForSequenceClassification.from_pretrained(tiny_model)
    assert small.config.num_hidden_layers == 1 and len(small.base_model.encoder.layer) == 1
    assert torch.equal(small.base_model.encoder.layer[0].output.dense.weight,
                       full.base_model.encoder.layer[1].output.dense.weight)
    assert torch.equal(small.classifier.weight, full.classifier.weight)
    assert (out / "tokenizer.json").is_file()
    with pytest.raises(ValueError, match="out of range"):
        keep_layers(tiny_model, tmp_path / "bad", [7])


def test_shipped_models_load_by_short_name_and_a_local_folder_of_that_name_wins(tiny_model, tmp_path,
                                                                                monkeypatch):
    from crossrank import CrossEncoder
    from crossrank.errors import ModelLoadError
    from crossrank.model.default import SHIPPED_MODELS, shipped_model_dir
    from crossrank.model.source import resolve_model_dir

    assert resolve_model_dir("default") == SHIPPED_MODELS["default"]
    by_name = CrossEncoder("default", use_ensemble=False)
    assert by_name.model_dir == SHIPPED_MODELS["default"]
    pairs = [("what is the capital of france", "Paris is the capital of France."),
             ("what is the capital of france", "Bananas are rich in potassium.")]
    scores = by_name.score(pairs)
    assert scores[0] > scores[1]
    assert np.allclose(scores, CrossEncoder(use_ensemble=False).score(pairs))
    with pytest.raises(ModelLoadError, match="no shipped model named"):
        shipped_model_dir("slow")
    shutil.copytree(tiny_model, tmp_path / "default")
    monkeypatch.chdir(tmp_path)
    assert resolve_model_dir("default") == (tmp_path / "default").resolve()


def test_the_trimmed_vocabulary_scores_english_exactly_as_before(tiny_model, tmp_path):
    from make_fallback import english_token, keep_layers

    from crossrank import CrossEncoder

    out = keep_layers(tiny_model, tmp_path / "trimmed", [0, 1], max_positions=256, keep_token=english_token)
    config = json.loads((out / "config.json").read_text())
    assert config["max_position_embeddings"] == 256 and config["vocab_size"] < 30522 - 2000
    pairs = [("what is the half-life of caffeine?", "Caffeine's half-life is about 5 hours (range 1.5-9.5 h)."),
             ("naïve bayes classifier", "A probabilistic classifier; α and β are priors.")]
    before, after = CrossEncoder(str(tiny_model)).score(pairs), CrossEncoder(str(out)).score(pairs)
    assert np.allclose(before, after, atol=1e-5)  # the same tokens, renumbered, with the same rows
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(out)
    tokens = tokenizer.convert_ids_to_tokens(tokenizer("東京 tokyo")["input_ids"])
    assert tokens == ["[CLS]", "[UNK]", "[UNK]", "tokyo", "[SEP]"]  # other scripts: unknown, English intact


def test_fallback_groups_keep_each_lists_top_and_a_sample_of_the_rest_in_list_order():
    from fallback_groups import sample_lists

    groups = [{"query": "q1", "documents": [f"d{i}" for i in range(30)], "source": "msmarco-dev-small"},
              {"query": "q2", "documents": ["a", "b", "c"], "source": "msmarco-dev-small"}]
    cut = sample_lists(groups, top=4, sampled=8, seed=0)
    first = [int(d[1:]) for d in cut[0]["documents"]]
    assert first[:4] == [0, 1, 2, 3] and len(first) == 12 and first == sorted(first)  # BM25 order kept
    assert cut[1]["documents"] == ["a", "b", "c"]  # a short list stays whole
    assert all(g["source"] == "msmarco-distill" and "labels" not in g for g in cut)  # labels come from the default
    assert sample_lists(groups, 4, 8, seed=0) == cut  # seeded
