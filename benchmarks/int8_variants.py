"""What keeps int8 close to fp32: the variants tried for crossrank's int8 export, measured side by side.

Each variant is an int8 ONNX graph of the shipped default's cross-encoder. Agreement with torch fp32 is
measured on TREC DL 2021 BM25 top-30 lists (40 queries): data that neither the export's sample pairs nor
the backend table (DL 2020, SciFact) use. Batch dependence: the largest score change between batches of
2,048 and of 256 tokens. Speed: best of 3 over 600 of those pairs (2 threads; int8 speeds on this shared
machine vary by about 10%, so the backend table in throughput.md is the speed reference).

    python benchmarks/int8_variants.py   # writes benchmarks/results/int8_variants.{json,md}
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def dl_pairs(folder: Path, queries: int, depth: int):
    from crossrank.data.formats import ranked, read_corpus, read_queries, read_run

    texts = read_queries(folder / "queries.jsonl")
    run = read_run(folder / "runs" / "bm25.top100.tsv").run
    chosen = [q for q in run if q in texts][:queries]
    lists = {q: ranked(run[q])[:depth] for q in chosen}
    corpus = read_corpus(folder / "corpus.jsonl", {d for docs in lists.values() for d in docs})
    pairs, groups = [], []
    for q in chosen:
        docs = [d for d in lists[q] if d in corpus]
        groups.append(np.arange(len(pairs), len(pairs) + len(docs)))
        pairs += [(texts[q], corpus[d].full_text) for d in docs]
    return pairs, groups


def agreement(reference: np.ndarray, scores: np.ndarray, groups) -> dict:
    from scipy.stats import spearmanr

    top10 = np.mean([len(set(g[np.argsort(-reference[g])[:10]]) & set(g[np.argsort(-scores[g])[:10]])) / 10
                     for g in groups])
    return {"top10_overlap": float(top10),
            "spearman_per_query": float(np.mean([spearmanr(reference[g], scores[g])[0] for g in groups])),
            "spearman": float(spearmanr(reference, scores)[0]),
            "max_abs_diff": float(np.max(np.abs(reference - scores)))}


def build(variant: str, loaded, sample, work: Path) -> Path:
    """The int8 graph of one variant (the production code path for the shipped ones)."""
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)

    from crossrank.engine.int8_prep import prepare_for_int8, sample_batches
    from crossrank.engine.onnx_export import ScoreGraph, _export_graph, _quantize_int8
    from crossrank.model.tokenization import PairTokenizer

    tokenizer = PairTokenizer(loaded.tokenizer, loaded.max_length)
    fp32, graph = work / f"{variant}.fp32.onnx", work / f"{variant}.onnx"
    model = loaded.model
    if variant.startswith("first token"):
        alpha = None if variant == "first token apart" else 0.75
        model, _ = prepare_for_int8(model, sample_batches(tokenizer, sample.queries, sample.documents), alpha)
    _export_graph(ScoreGraph(model, loaded.num_labels, True), fp32, True)
    if variant.startswith("static"):
        class Reader(CalibrationDataReader):
            def __init__(self):
                self.batches = (  # one padded width per batch: the calibrator concatenates equal shapes
                    {k: v.numpy() for k, v in b.items()}
                    for b in sample_batches(tokenizer, sample.queries[:480], sample.documents[:480], 16 * 512))

            def get_next(self):
                return next(self.batches, None)

        quantize_static(str(fp32), str(graph), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        op_types_to_quantize=["MatMul"], calibrate_method=CalibrationMethod.MinMax,
                        extra_options={"WeightSymmetric": True, "MatMulConstBOnly": True})
    else:
        _quantize_int8(fp32, graph)
    return graph


VARIANTS = {
    "plain dynamic (crossrank before)": "ONNX Runtime quantize_dynamic, int8 weights per channel, head fp32",
    "static QDQ, MinMax calibration": "activation ranges fixed from sample pairs (no batch dependence)",
    "first token apart": "the [CLS] row and the [CLS]-only last layer in fp32, padding rows zeroed",
    "first token apart + smoothing (shipped)": "plus SmoothQuant (alpha 0.75) from the sample pairs",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from crossrank.engine.agreement import beir_sample, builtin_sample
    from crossrank.engine.onnx_backend import OnnxBackend
    from crossrank.engine.scorer import ScoringEngine
    from crossrank.engine.torch_backend import TorchBackend
    from crossrank.model.default import default_model_dir
    from crossrank.model.loading import load_model
    from crossrank.model.tokenization import PairTokenizer

    loaded = load_model(default_model_dir())
    tokenizer = PairTokenizer(loaded.tokenizer, loaded.max_length)
    pairs, groups = dl_pairs(args.data / "trec-dl-2021", 40, 30)
    queries, documents = [q for q, _ in pairs], [d for _, d in pairs]
    reference = ScoringEngine(tokenizer, TorchBackend(loaded), 2048).score(queries, documents)[0]
    samples = {"built-in sample": builtin_sample()}
    if (args.data / "msmarco-dev-graded").is_dir():
        samples["MS MARCO dev (--calibration-data)"] = beir_sample(args.data / "msmarco-dev-graded", 40, 12)
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for variant, what in VARIANTS.items():
            for sample_name, sample in samples.items():
                if sample_name != "built-in sample" and not variant.startswith(("static", "first token apart +")):
                    continue  # variants that read no sample pairs
                graph = build(variant, loaded, sample, Path(work))
                backend = OnnxBackend(graph, "int8", args.threads)
                engine = ScoringEngine(tokenizer, backend, 2048)
                scores = engine.score(queries, documents)[0]
                small = ScoringEngine(tokenizer, backend, 256).score(queries, documents)[0]
                times = []
                for _ in range(3):
                    start = time.perf_counter()
                    engine.score(queries[:600], documents[:600])
                    times.append(time.perf_counter() - start)
                row = {"variant": variant, "what": what, "sample": sample_name if "dynamic" not in variant else "-",
                       **agreement(reference, scores, groups),
                       "batch_dependence": float(np.max(np.abs(scores - small))), "pairs_per_second": 600 / min(times)}
                rows.append(row)
                print(json.dumps(row), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "int8_variants.json").write_text(json.dumps({"pairs": len(pairs), "rows": rows}, indent=2))
    lines = ["# int8 variants: agreement with fp32 on held-out pairs", "",
             f"TREC DL 2021 BM25 top-30, {len(groups)} queries, {len(pairs)} pairs; the shipped default's "
             "cross-encoder; `python benchmarks/int8_variants.py`.", "",
             "| variant | sample pairs | top-10 overlap | Spearman per query | max score diff | batch dependence | pairs/s |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['variant']} | {r['sample']} | {r['top10_overlap']:.3f} | {r['spearman_per_query']:.4f} | "
              f"{r['max_abs_diff']:.3f} | {r['batch_dependence']:.3f} | {r['pairs_per_second']:.0f} |" for r in rows]
    (args.out / "int8_variants.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
