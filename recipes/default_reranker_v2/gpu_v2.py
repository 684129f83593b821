"""Default reranker v2 on a GPU, in one device call: pack here, train and measure there, join here.

The CPU runs of stages 1-2 (481 + 214 steps, 66 min) saw ~45k distillation pairs and stopped ~0.06 below
their teachers. A GPU goes through the pool several times in minutes.
But a GPU machine reaches nothing: not ``../shared``, not the teachers (438 MB of mpnet), not PyPI. So the
teachers' scores are computed here (``build_pool.py``), and ``pack`` writes everything the run needs into
one small folder (~9 MB), texts stored once (gzip):

- ``texts.json.gz``: every distinct query and passage;
- ``stage1.jsonl.gz`` / ``stage2.jsonl.gz``: the two stages' listwise groups (``make_examples.py``'s, as
  text ids): stage 1 the MS MARCO dev-small pseudo-queries of the pool (the teachers' top 4 + 8 sampled,
  labels the teacher ensemble's z-scores / 0.4; ``--stage1-sources msmarco quora`` adds the Quora questions
  of a pool built with ``--quora-queries``), plus SciFact and NFCorpus train groups labelled by v1's own
  scores (``preserved``); stage 2 the judgments (DL 2021, WikiQA) with replay;
- ``eval.json.gz``: BM25 top-100 lists, queries and judgments of TREC DL 2020 and 2021, SciFact and
  NFCorpus test, NFCorpus dev (texts as ids);
- ``wheels/``: ir-measures and pytrec-eval-terrier for the GPU machine's Python 3.12 (the metrics).

``train`` (on the GPU; ``gpu_v2.sh`` runs it) starts from v1's cross-encoder (``src/crossrank/default_model``).
A probe of 12 steps measures the machine, and stage 1 gets as many epochs (at most ``--epochs``) as fit in
``--stage1-budget-s``: a device call that overruns returns nothing. Each full epoch (and a last partial one)
is measured on DL 2021 and NFCorpus dev, and the one kept is chosen by the rule fixed here (best DL 2021
nDCG@10 among those whose NFCorpus dev nDCG@10 is within 0.005 of v1's; else best DL 2021); then stage 2;
v1, the chosen stage 1 and stage 2 are measured on every set, through ``CrossEncoder`` as they would ship
(cross-encoder alone, 256 tokens). DL 2020, SciFact and NFCorpus test only measure: nothing is chosen on
them. It writes ``results.json``/``results.md`` and the stage-2 model (fp16) as a tar cut into parts under
16 MiB, all to ``--out`` (``$OUT``).

``join`` (here) puts the parts back together, checks the sha256 and unpacks the model folder; then package
it as ``reproduce.sh`` step 5 does (``make_default.py``, ``fit_ensemble_weight.py``, calibration).

    python recipes/default_reranker_v2/gpu_v2.py pack --pool ../runs/v2b/pool-quora.jsonl --out .gpu-v2
    bash recipes/default_reranker_v2/gpu_v2.sh          # on the GPU machine (device tool; see that file)
    python recipes/default_reranker_v2/gpu_v2.py join --parts <returned files> --output ../runs/v2b/gpu-stage2
    python recipes/default_reranker_v2/gpu_v2.py train --pack .gpu-v2 --out /tmp/v2-smoke --device cpu --smoke
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import random
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
EVAL_SETS = (("trec-dl-2020", "test"), ("trec-dl-2021", "test"), ("scifact", "test"), ("nfcorpus", "test"),
             ("nfcorpus", "dev"))
PART_BYTES = 15 * 1024 * 1024  # the device tool returns files of at most 16 MiB
WHEELS = ("pytrec-eval-terrier==0.5.11", "ir-measures==0.4.3")


# -- pack (here) ---------------------------------------------------------------------------------------------
class TextTable:
    """Each distinct text once; groups and lists refer to texts by index."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.index: dict[str, int] = {}

    def id(self, text: str) -> int:
        if text not in self.index:
            self.index[text] = len(self.texts)
            self.texts.append(text)
        return self.index[text]

    def group(self, g: dict) -> dict:
        return {"q": self.id(g["query"]), "d": [self.id(d) for d in g["documents"]], "labels": g["labels"],
                "source": g["source"]}


SOURCES = {"msmarco": "msmarco-dev-small", "quora": "quora-train"}


def preserved(groups: list[dict]) -> list[dict]:
    """The same groups labelled by v1's own cross-encoder (its logits as the listwise target): distilling the
    web teachers made v1 forget biomedical ranking (CPU pilot: NFCorpus dev 0.265 -> 0.226 after 27k pairs),
    so its SciFact / NFCorpus train groups teach it to keep what it did there (judged positive + 7 BM25
    negatives, as v1 was trained)."""
    from crossrank import CrossEncoder

    pairs = [(g["query"], d) for g in groups for d in g["documents"]]
    with CrossEncoder(str(ROOT / "src" / "crossrank" / "default_model"), dtype="bfloat16", max_length=128,
                      use_ensemble=False) as v1:
        scores = v1.score(pairs)
    start = 0
    for g in groups:
        g["labels"] = [round(float(x), 4) for x in scores[start:start + len(g["documents"])]]
        g["source"] += "-v1"
        start += len(g["documents"])
    return groups


def stage_groups(pool_path: Path, data: Path, stage1_size: int, sources: list[str], seed: int,
                 preserve: bool = True, nfcorpus: int | None = 800) -> tuple[list[dict], list[dict]]:
    """make_examples.py's groups of both stages; stage 1 groups hold the teachers' top 4 and ``stage1_size``
    - 4 sampled candidates of each pseudo-query of ``sources``, plus SciFact and NFCorpus train groups
    (``nfcorpus`` of them; None: all), labelled by v1 itself with ``preserve``, else by the judgments."""
    import make_examples as mx

    pool = mx.read_pool(pool_path, mx.holdout_queries(data))
    weights = mx.DEFAULT_WEIGHTS
    stage1 = mx.distill_groups(pool, weights, 4, stage1_size - 4, 0.4, seed,
                               sources=tuple(SOURCES[s] for s in sources))
    biomedical = mx.beir_groups(data, "scifact", None, seed) + mx.beir_groups(data, "nfcorpus", nfcorpus, seed)
    stage1 += preserved(biomedical) if preserve else biomedical
    stage2 = mx.dl2021_groups(data, 12, 2.0, 12, seed)
    stage2 += mx.wikiqa_groups(pool, 12, seed)
    stage2 += mx.distill_groups(pool, weights, 4, 8, 0.4, seed + 1, limit=1000)
    stage2 += mx.beir_groups(data, "scifact", 300, seed + 1)
    stage2 += mx.beir_groups(data, "nfcorpus", 300, seed + 1)
    stage2 = mx.cut_to(stage2, 12, seed)
    random.Random(seed).shuffle(stage1)
    random.Random(seed).shuffle(stage2)
    return stage1, stage2


def eval_sets(table: TextTable) -> dict:
    """BM25 top-100 of each evaluation set, as text ids, with its queries and judgments."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from reranker_quality import first_stage

    from crossrank.data.formats import read_corpus

    sets = {}
    for name, split in EVAL_SETS:
        folder, qrels, queries, run = first_stage(name, split, 100)
        corpus = read_corpus(folder / "corpus.jsonl", {d for docs in run.values() for d in docs})
        sets[f"{name}/{split}"] = {
            "qrels": qrels,
            "queries": {q: table.id(t) for q, t in queries.items() if q in run},
            "run": {q: [[d, table.id(corpus[d].full_text)] for d in docs] for q, docs in run.items()},
        }
    return sets


def write_gzip_json(path: Path, obj) -> None:
    with gzip.open(path, "wt", encoding="utf-8", compresslevel=9) as handle:
        json.dump(obj, handle)


def read_gzip_json(path: Path):
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return json.load(handle)


def pack(args: argparse.Namespace) -> None:
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    table = TextTable()
    stage1, stage2 = stage_groups(args.pool, args.data, args.stage1_size, args.stage1_sources, args.seed,
                                  not args.no_preserve, args.nfcorpus_groups or None)
    evals = eval_sets(table)
    for name, groups in (("stage1", stage1), ("stage2", stage2)):
        with gzip.open(out / f"{name}.jsonl.gz", "wt", encoding="utf-8", compresslevel=9) as handle:
            for g in groups:
                handle.write(json.dumps(table.group(g)) + "\n")
    write_gzip_json(out / "eval.json.gz", evals)
    write_gzip_json(out / "texts.json.gz", table.texts)
    (out / "pack.json").write_text(json.dumps({"pool": str(args.pool), "stage1_size": args.stage1_size,
                                               "stage1_sources": args.stage1_sources, "seed": args.seed,
                                               "preserve": not args.no_preserve,
                                               "nfcorpus_groups": args.nfcorpus_groups}))
    wheels = out / "wheels"
    if not args.no_wheels:
        wheels.mkdir(exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                        "--python-version", "3.12", "--implementation", "cp", "--platform", "manylinux_2_28_x86_64",
                        "--platform", "manylinux_2_17_x86_64", "--platform", "manylinux2014_x86_64",
                        "-d", str(wheels), *WHEELS], check=True)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(json.dumps({"stage1_groups": len(stage1), "stage1_pairs": sum(len(g["documents"]) for g in stage1),
                      "stage2_groups": len(stage2), "texts": len(table.texts),
                      "eval_sets": {k: len(v["run"]) for k, v in evals.items()}, "bytes": size}))


# -- train (on the GPU) ----------------------------------------------------------------------------------------
def read_pack(folder: Path, smoke: bool, eval_queries: int | None = None):
    from crossrank.training.negatives import TrainingGroup

    texts = read_gzip_json(folder / "texts.json.gz")
    stages = {}
    for name in ("stage1", "stage2"):
        with gzip.open(folder / f"{name}.jsonl.gz", "rt", encoding="utf-8") as handle:
            rows = [json.loads(line) for line in handle]
        if smoke:
            rows = rows[:24]
        stages[name] = [TrainingGroup(str(i), texts[r["q"]], [texts[d] for d in r["d"]],
                                      [float(x) for x in r["labels"]]) for i, r in enumerate(rows)]
    evals = read_gzip_json(folder / "eval.json.gz")
    if smoke:
        evals = {k: {**v, "run": {q: docs[:10] for q, docs in list(v["run"].items())[:3]}} for k, v in evals.items()}
    elif eval_queries:  # a CPU pilot: the same first queries of each set at every stage
        evals = {k: {**v, "run": {q: v["run"][q] for q in sorted(v["run"])[:eval_queries]}} for k, v in evals.items()}
    return texts, stages, evals


def ndcg_of(score, texts: list[str], evalset: dict) -> float:
    """nDCG@10 (ir-measures, as crossrank eval) of reranking one set's BM25 top-100 with ``score``."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from reranker_quality import to_run

    from crossrank.evaluation.metrics import evaluate

    lists = evalset["run"]
    pairs = [(texts[evalset["queries"][q]], texts[t]) for q, docs in lists.items() for _, t in docs]
    run = to_run({q: [d for d, _ in docs] for q, docs in lists.items()}, score(pairs))
    qrels = {q: {d: int(g) for d, g in docs.items()} for q, docs in evalset["qrels"].items() if q in run}
    return evaluate(qrels, run, ["ndcg@10"]).metrics["ndcg@10"]


def measure(folder: Path, texts, evals, device: str, dtype: str) -> dict[str, float]:
    """nDCG@10 of every set, scored by a saved model folder the way it will ship: crossrank's CrossEncoder,
    cross-encoder alone, 256 tokens (v1's sentence_bert_config.json; training cuts pairs at 128)."""
    from crossrank import CrossEncoder

    with CrossEncoder(str(folder), device=device, dtype=dtype, max_length=256, use_ensemble=False) as model:
        return {name: round(ndcg_of(model.score, texts, s), 4) for name, s in evals.items()}


def choose_epoch(history: list[dict], v1: dict[str, float]) -> dict:
    """The rule fixed before any figure: best DL 2021 among epochs that keep NFCorpus dev within 0.005 of
    v1's, else the best DL 2021."""
    keep = [h for h in history if h["nfcorpus/dev"] >= v1["nfcorpus/dev"] - 0.005] or history
    return max(keep, key=lambda h: h["trec-dl-2021/test"])


def train(args: argparse.Namespace) -> None:
    import torch

    from crossrank.training.trainer import TrainConfig, Trainer, TrainResult

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    texts, stages, evals = read_pack(args.pack, args.smoke, args.eval_queries)
    log = {"device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
           "torch": torch.__version__, "stage1_groups": len(stages["stage1"]),
           "stage1_pairs": sum(len(g.documents) for g in stages["stage1"]), "stage2_groups": len(stages["stage2"]),
           "pack": json.loads((args.pack / "pack.json").read_text()) if (args.pack / "pack.json").is_file() else {}}
    dev = {k: v for k, v in evals.items() if k in ("trec-dl-2021/test", "nfcorpus/dev")}
    precision = "bf16" if args.device.startswith("cuda") else args.precision
    base = str(args.base)
    eval_dtype = "bfloat16" if precision == "bf16" else "float32"

    def config(epochs, lr, groups, max_length=128):
        return TrainConfig(loss="listwise", epochs=epochs, learning_rate=lr, groups_per_batch=groups,
                           max_length=max_length, seed=args.seed, precision=precision, checkpoint_every=10**9)

    # v1, then stage 1 sized to the time budget (a probe of a few steps measures this machine), each full
    # epoch (and the last, partial one) measured on the two dev sets.
    probe = Trainer(base, work / "probe", config(1, args.lr, args.stage1_batch), device=args.device)
    log["v1"] = measure(base, texts, evals, args.device, eval_dtype)
    print(json.dumps({"v1": log["v1"]}), flush=True)
    per_step = seconds_per_step(probe, stages["stage1"], args.stage1_batch)
    del probe
    per_epoch = -(-len(stages["stage1"]) // args.stage1_batch)
    epochs = min(float(args.epochs), round(0.8 * args.stage1_budget_s / (per_step * per_epoch), 3))
    epochs = max(epochs, min(1.0, 20 / per_epoch))
    print(json.dumps({"seconds_per_step": round(per_step, 4), "steps_per_epoch": per_epoch, "epochs": epochs}),
          flush=True)
    trainer = Trainer(base, work / "stage1", config(epochs, args.lr, args.stage1_batch), device=args.device)
    history = []
    start = time.perf_counter()

    def after_epoch(epoch: float) -> None:
        folder = work / "stage1" / f"epoch-{epoch}"
        trainer._save(folder, TrainResult(steps=0, seconds=0.0))
        values = measure(folder, texts, dev, args.device, eval_dtype)
        history.append({"epoch": epoch, **values, "seconds": round(time.perf_counter() - start, 1)})
        print(json.dumps(history[-1]), flush=True)

    stage1_time = train_by_epoch(trainer, stages["stage1"], per_epoch, after_epoch, 1.5 * args.stage1_budget_s)
    chosen = choose_epoch(history, log["v1"])
    log["stage1"] = {"history": history, "chosen_epoch": chosen["epoch"], "seconds": round(stage1_time, 1),
                     "config": {"epochs": epochs, "seconds_per_step": round(per_step, 4), "lr": args.lr,
                                "groups_per_batch": args.stage1_batch,
                                "group_size": max(len(g.documents) for g in stages["stage1"])}}
    stage1_folder = work / "stage1" / f"epoch-{chosen['epoch']}"
    log["stage1"]["measured"] = measure(stage1_folder, texts, evals, args.device, eval_dtype)
    print(json.dumps({"stage1": log["stage1"]["measured"]}), flush=True)
    final = stage1_folder
    if args.stage2_epochs > 0:  # 0: a pilot of stage 1 alone
        trainer = Trainer(str(stage1_folder), work / "stage2", config(args.stage2_epochs, args.stage2_lr, 8),
                          device=args.device)
        start = time.perf_counter()
        result = trainer.train(stages["stage2"])
        final = work / "stage2" / "final"
        log["stage2"] = {"seconds": round(time.perf_counter() - start, 1), "steps": result.steps,
                         "measured": measure(final, texts, evals, args.device, eval_dtype),
                         "config": {"lr": args.stage2_lr, "epochs": args.stage2_epochs, "groups_per_batch": 8}}
        print(json.dumps({"stage2": log["stage2"]["measured"]}), flush=True)
    log["parts"] = ship_parts(final, out)
    (out / "results.json").write_text(json.dumps(log, indent=2))
    table = results_table(log)
    (out / "results.md").write_text(table)
    print(table, flush=True)


class OutOfTime(Exception):
    """Raised when stage 1 runs far past its budget (a slower machine than the probe said): keep what is done."""


def seconds_per_step(probe, groups, batch: int, steps: int = 12) -> float:
    """Seconds per stage-1 optimizer step on this machine: ``steps`` real steps, the first two not counted."""
    marks = [time.perf_counter()]
    probe.train(groups[:steps * batch], progress=lambda step, loss: marks.append(time.perf_counter()))
    skip = 2 if len(marks) > 4 else 0  # warm-up steps (CUDA kernels, allocator) are slower
    return (marks[-1] - marks[skip]) / (len(marks) - 1 - skip)


def train_by_epoch(trainer, groups, per_epoch: int, after_epoch, limit_s: float) -> float:
    """Trainer.train, calling ``after_epoch`` at each full epoch and at the end of a partial last one, and
    stopping (measured, saved) if it runs past ``limit_s``: a device call that overruns returns nothing."""
    started = time.perf_counter()
    total = max(1, int(per_epoch * trainer.config.epochs))

    def progress(step: int, _loss: float) -> None:
        if step % per_epoch == 0 or step == total:
            after_epoch(round(step / per_epoch, 3))
        elif time.perf_counter() - started > limit_s:
            after_epoch(round(step / per_epoch, 3))
            raise OutOfTime(f"stage 1 stopped at step {step} of {total}: past {limit_s:.0f} s")

    try:
        trainer.train(groups, progress=progress)
    except OutOfTime as stop:
        print(str(stop), flush=True)
    return time.perf_counter() - started


def ship_parts(folder: Path, out: Path) -> dict:
    """The model in fp16 (as it ships) with its tokenizer, as a tar cut into parts the device tool returns."""
    import torch
    from transformers import AutoModelForSequenceClassification

    staged = folder.with_name("fp16")
    shutil.rmtree(staged, ignore_errors=True)
    AutoModelForSequenceClassification.from_pretrained(folder, dtype=torch.float32).half().save_pretrained(staged)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "training.json"):
        if (folder / name).is_file():
            shutil.copy(folder / name, staged / name)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(staged, arcname="model")
    data = buffer.getvalue()
    names = []
    for i in range(0, len(data), PART_BYTES):
        name = f"model.tar.part{i // PART_BYTES}"
        (out / name).write_bytes(data[i:i + PART_BYTES])
        names.append(name)
    return {"files": names, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def results_table(log: dict) -> str:
    names = list(log["v1"])
    stage1 = log["stage1"]
    stage2 = (f"Stage 2: {log['stage2_groups']} groups, {log['stage2']['seconds']} s." if "stage2" in log
              else "No stage 2.")
    lines = [f"# Default reranker v2 on {log['device']} (torch {log['torch']})", "",
             f"Pack: {json.dumps(log.get('pack', {}))}.", "",
             f"Stage 1: {log['stage1_groups']} groups, {log['stage1_pairs']} pairs per epoch, "
             f"{stage1['config']['groups_per_batch']} groups per step, lr {stage1['config']['lr']}, "
             f"{stage1['config']['seconds_per_step']} s per step, {stage1['seconds']} s; chosen epoch "
             f"{stage1['chosen_epoch']} (rule: best DL 2021 with NFCorpus dev within 0.005 of v1). {stage2}",
             "", "| nDCG@10, BM25 top-100, cross-encoder alone | " + " | ".join(names) + " |",
             "|---" * (len(names) + 1) + "|"]
    rows = [("v1", log["v1"]), ("stage 1", stage1["measured"])]
    rows += [("stage 2", log["stage2"]["measured"])] if "stage2" in log else []
    for label, values in rows:
        lines.append(f"| {label} | " + " | ".join(f"{values[n]:.4f}" for n in names) + " |")
    lines += ["", "| stage 1 epoch | DL 2021 | NFCorpus dev | seconds |", "|---|---|---|---|"]
    for h in log["stage1"]["history"]:
        lines.append(f"| {h['epoch']} | {h['trec-dl-2021/test']:.4f} | {h['nfcorpus/dev']:.4f} | {h['seconds']} |")
    return "\n".join(lines) + "\n"


# -- join (here) -----------------------------------------------------------------------------------------------
def join(args: argparse.Namespace) -> None:
    parts = sorted(args.parts, key=lambda p: int(p.name.rsplit("part", 1)[1]))
    data = b"".join(p.read_bytes() for p in parts)
    results = json.loads((parts[0].parent / "results.json").read_text())
    if hashlib.sha256(data).hexdigest() != results["parts"]["sha256"]:
        raise SystemExit(f"the parts do not make the model the GPU wrote (sha256 differs): {[str(p) for p in parts]}")
    if args.output.exists():
        raise SystemExit(f"{args.output} exists: not overwritten")
    tmp = args.output.with_name(args.output.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(tmp, filter="data")
    (tmp / "model").rename(args.output)
    tmp.rmdir()
    print(f"{args.output}: the stage-2 model ({len(data)} bytes of tar, sha256 checked)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="here: the pool, groups and evaluation sets as one small folder")
    p.add_argument("--pool", type=Path, required=True)
    p.add_argument("--out", type=Path, default=ROOT / ".gpu-v2")
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--stage1-size", type=int, default=12, help="candidates per stage-1 group: the teachers' top 4 "
                   "and the rest sampled (the pool has 30; 12 as the CPU run that gained)")
    p.add_argument("--stage1-sources", nargs="+", choices=sorted(SOURCES), default=["msmarco"],
                   help="pseudo-queries of stage 1 (quora: only in a pool built with --quora-queries)")
    p.add_argument("--no-preserve", action="store_true", help="SciFact/NFCorpus groups labelled by the judgments "
                   "(as the CPU run), not by v1's own scores")
    p.add_argument("--nfcorpus-groups", type=int, default=800,
                   help="NFCorpus train groups in stage 1 (one per judged positive: 0, all of them, is ~100k)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-wheels", action="store_true")
    t = sub.add_parser("train", help="on the GPU: both stages, every measurement, the model in parts")
    t.add_argument("--pack", type=Path, default=ROOT / ".gpu-v2")
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--work", type=Path, default=Path("/tmp/v2-gpu"))
    t.add_argument("--base", type=Path, default=ROOT / "src" / "crossrank" / "default_model",
                   help="the starting cross-encoder (v1's)")
    t.add_argument("--device", default="cuda")
    t.add_argument("--precision", default="bf16", help="on the CPU (CUDA always trains in bf16)")
    t.add_argument("--epochs", type=float, default=6, help="at most; fewer when the budget allows fewer")
    t.add_argument("--lr", type=float, default=7e-5)
    t.add_argument("--stage1-batch", type=int, default=16, help="groups per step (x 30 candidates)")
    t.add_argument("--stage1-budget-s", type=float, default=300, help="stage 1 is sized (by a probe of 12 "
                   "steps) to end within about this many seconds")
    t.add_argument("--stage2-lr", type=float, default=2e-5)
    t.add_argument("--stage2-epochs", type=float, default=1.0, help="less for a CPU pilot; 0: no stage 2")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--eval-queries", type=int, default=None, help="a CPU pilot: the first N queries of each set")
    t.add_argument("--smoke", action="store_true", help="24 groups and 3 queries per set: checks the script")
    j = sub.add_parser("join", help="here: the returned parts back into a model folder")
    j.add_argument("--parts", type=Path, nargs="+", required=True)
    j.add_argument("--output", type=Path, required=True)
    args = parser.parse_args()
    {"pack": pack, "train": train, "join": join}[args.command](args)


if __name__ == "__main__":
    main()
