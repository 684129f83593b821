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


def _tiny_pack(folder: Path) -> None:
    """A pack in gpu_v2.py's format: texts once, groups and evaluation lists as text ids."""
    import gzip

    from gpu_v2 import EVAL_SETS, TextTable

    table = TextTable()
    topics = [("what is a cat", "a cat is a small animal"), ("capital of france", "paris is the capital of france"),
              ("who wrote hamlet", "hamlet was written by shakespeare"), ("how tall is everest", "everest is 8849 m")]
    noise = ["stocks fell on monday", "the weather is mild", "a recipe for bread", "trains leave at noon"]
    stage = [table.group({"query": q, "documents": [d, *noise], "labels": [5.0, 0.0, 0.0, 0.0, 0.0],
                          "source": "t"}) for q, d in topics]
    for name in ("stage1", "stage2"):
        with gzip.open(folder / f"{name}.jsonl.gz", "wt", encoding="utf-8") as handle:
            handle.writelines(json.dumps(g) + "\n" for g in stage)
    run = {f"q{i}": [[f"d{i}", table.id(d)], *[[f"n{j}", table.id(n)] for j, n in enumerate(noise)]]
           for i, (_, d) in enumerate(topics)}
    evals = {f"{n}/{s}": {"qrels": {f"q{i}": {f"d{i}": 2} for i in range(4)},
                          "queries": {f"q{i}": table.id(q) for i, (q, _) in enumerate(topics)}, "run": run}
             for n, s in EVAL_SETS}
    with gzip.open(folder / "eval.json.gz", "wt", encoding="utf-8") as handle:
        json.dump(evals, handle)
    with gzip.open(folder / "texts.json.gz", "wt", encoding="utf-8") as handle:
        json.dump(table.texts, handle)


def test_the_gpu_run_trains_measures_and_returns_a_model_that_joins_back_exactly(trainable_model, tmp_path,
                                                                                  monkeypatch):
    import gpu_v2
    import torch
    from safetensors.torch import load_file

    pack, out = tmp_path / "pack", tmp_path / "out"
    pack.mkdir()
    _tiny_pack(pack)
    monkeypatch.setattr(gpu_v2, "PART_BYTES", 200_000)  # several parts, as the 45 MB model makes
    monkeypatch.setattr(sys, "argv", ["gpu_v2.py", "train", "--pack", str(pack), "--out", str(out), "--work",
                                      str(tmp_path / "work"), "--base", str(trainable_model), "--device", "cpu",
                                      "--precision", "fp32", "--epochs", "2", "--stage1-batch", "2", "--lr", "1e-3"])
    gpu_v2.main()
    results = json.loads((out / "results.json").read_text())
    assert [h["epoch"] for h in results["stage1"]["history"]] == [1, 2]
    for stage in (results["v1"], results["stage1"]["measured"], results["stage2"]["measured"]):
        assert set(stage) == {f"{n}/{s}" for n, s in gpu_v2.EVAL_SETS} and all(0 <= v <= 1 for v in stage.values())
    assert results["stage1_pairs"] == 20 and "| stage 2 |" in (out / "results.md").read_text()
    parts = sorted(out.glob("model.tar.part*"))
    assert len(parts) == len(results["parts"]["files"]) >= 2
    joined = tmp_path / "joined"
    monkeypatch.setattr(sys, "argv", ["gpu_v2.py", "join", "--parts", *map(str, parts), "--output", str(joined)])
    gpu_v2.main()
    shipped = load_file(str(joined / "model.safetensors"))
    trained = load_file(str(tmp_path / "work" / "stage2" / "final" / "model.safetensors"))
    assert all(shipped[k].dtype == torch.float16 and shipped[k].float().allclose(trained[k].half().float())
               for k in trained)
    with pytest.raises(SystemExit, match="exists"):  # never over an existing folder
        gpu_v2.main()
    parts[0].write_bytes(parts[0].read_bytes()[:-1] + b"x")
    monkeypatch.setattr(sys, "argv", ["gpu_v2.py", "join", "--parts", *map(str, parts), "--output",
                                      str(tmp_path / "other")])
    with pytest.raises(SystemExit, match="sha256"):
        gpu_v2.main()


def test_the_stage1_epoch_rule_keeps_nfcorpus_and_then_maximises_dl2021():
    from gpu_v2 import choose_epoch

    v1 = {"nfcorpus/dev": 0.30}
    history = [{"epoch": 1, "trec-dl-2021/test": 0.60, "nfcorpus/dev": 0.299},
               {"epoch": 2, "trec-dl-2021/test": 0.62, "nfcorpus/dev": 0.290},
               {"epoch": 3, "trec-dl-2021/test": 0.61, "nfcorpus/dev": 0.296}]
    assert choose_epoch(history, v1)["epoch"] == 3  # epoch 2 loses 0.01 on NFCorpus dev
    assert choose_epoch([history[1]], v1)["epoch"] == 2  # none keeps NFCorpus: the best DL 2021


def test_quora_pseudo_queries_come_from_train_pairs_only_deduplicated_and_detokenised(tmp_path):
    from build_pool import quora_questions

    pairs = tmp_path / "quora-duplicates" / "pairs"
    pairs.mkdir(parents=True)
    header = "id\tq1\tq2\tlabel\n"
    (pairs / "train.tsv").write_text(header + "a\tHow do I learn Python ?\twhat 's the best way to learn python ?\t1\n"
                                     "b\thow do i learn python ?\tIs the -LRB- new -RRB- iPhone worth it ?\t0\n")
    (pairs / "dev.tsv").write_text(header + "c\tWhere is Paris ?\tWhat is Rome ?\t0\n")
    questions = quora_questions(tmp_path, 10, seed=0)
    assert sorted(questions) == ["How do I learn Python?", "Is the (new) iPhone worth it?",
                                 "what's the best way to learn python?"]
    assert len(quora_questions(tmp_path, 2, seed=0)) == 2 and quora_questions(tmp_path, 0, seed=0) == []


def test_a_stage1_pilot_without_stage2_returns_the_chosen_stage1_model(trainable_model, tmp_path, monkeypatch):
    import gpu_v2
    import torch
    from safetensors.torch import load_file

    pack, out, work = tmp_path / "pack", tmp_path / "out", tmp_path / "work"
    pack.mkdir()
    _tiny_pack(pack)
    monkeypatch.setattr(sys, "argv", ["gpu_v2.py", "train", "--pack", str(pack), "--out", str(out), "--work",
                                      str(work), "--base", str(trainable_model), "--device", "cpu", "--precision",
                                      "fp32", "--epochs", "1", "--stage1-batch", "2", "--stage2-epochs", "0",
                                      "--eval-queries", "2"])
    gpu_v2.main()
    results = json.loads((out / "results.json").read_text())
    assert "stage2" not in results and "| stage 2 |" not in (out / "results.md").read_text()
    assert all(len(gpu_v2.read_pack(pack, False, 2)[2][k]["run"]) == 2 for k in results["v1"])  # 2 queries a set
    monkeypatch.setattr(sys, "argv", ["gpu_v2.py", "join", "--parts", *map(str, sorted(out.glob("model.tar.part*"))),
                                      "--output", str(tmp_path / "joined")])
    gpu_v2.main()
    chosen = load_file(str(work / "stage1" / f"epoch-{results['stage1']['chosen_epoch']}" / "model.safetensors"))
    joined = load_file(str(tmp_path / "joined" / "model.safetensors"))
    assert all(torch.equal(joined[k], chosen[k].half()) for k in chosen)


def test_biomedical_groups_are_relabelled_by_v1_itself_to_keep_what_it_learnt():
    import gpu_v2

    from crossrank import CrossEncoder

    groups = [{"query": "vitamin d and bone density", "documents": ["Vitamin D supplements raised bone density.",
                                                                    "The stock market fell."],
               "labels": [10.0, 0.0], "source": "nfcorpus"}]
    relabelled = gpu_v2.preserved([dict(g) for g in groups])
    v1 = CrossEncoder("default", use_ensemble=False, max_length=128)
    expected = v1.score([("vitamin d and bone density", d) for d in groups[0]["documents"]])
    assert relabelled[0]["source"] == "nfcorpus-v1" and relabelled[0]["documents"] == groups[0]["documents"]
    assert relabelled[0]["labels"] == pytest.approx(expected.tolist(), abs=0.1)  # bf16 labels of v1's logits
    assert relabelled[0]["labels"][0] > relabelled[0]["labels"][1]
