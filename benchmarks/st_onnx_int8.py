"""crossrank int8 against sentence-transformers' own ONNX int8 backend, on the same pairs, in one script.

sentence-transformers' ONNX backend needs optimum, which pins transformers 4.x, so it cannot live in
crossrank's environment: it runs in a second virtual environment (``--st-python``), as a worker process
that this script drives round by round. Every round times sentence-transformers ONNX int8
(``export_dynamic_quantized_onnx_model(model, "avx512_vnni")``, its documented recipe), its torch fp32
``predict`` and crossrank's int8 on the same 700 DL 2020 pairs, alternating the order; the best round of
each is compared. Fidelity: Spearman and largest score difference against crossrank's torch fp32 scores.

    python -m venv ../venv-stonnx
    ../venv-stonnx/bin/pip install torch==2.13.0 "optimum[onnxruntime]" "sentence-transformers>=5"
    python benchmarks/st_onnx_int8.py --st-python ../venv-stonnx/bin/python
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

WORKER = r"""
import json, sys, time, torch
torch.set_num_threads({threads})
from sentence_transformers import CrossEncoder, __version__
from sentence_transformers import export_dynamic_quantized_onnx_model
import onnxruntime, transformers
folder, pairs = {folder!r}, json.load(open({pairs!r}))
exported = CrossEncoder(folder, backend="onnx", device="cpu")
export_dynamic_quantized_onnx_model(exported, "avx512_vnni", folder)
int8 = CrossEncoder(folder, backend="onnx", device="cpu",
                    model_kwargs={{"file_name": "onnx/model_qint8_avx512_vnni.onnx"}})
fp32 = CrossEncoder(folder, device="cpu")
models = {{"int8": int8, "fp32": fp32}}
print(json.dumps({{"versions": {{"sentence_transformers": __version__, "transformers": transformers.__version__,
                                 "onnxruntime": onnxruntime.__version__}},
                  "scores": int8.predict(pairs, batch_size=32, show_progress_bar=False).tolist()}}), flush=True)
for line in sys.stdin:
    model = models[line.strip()]
    start = time.perf_counter()
    model.predict(pairs, batch_size=32, show_progress_bar=False)
    print(json.dumps({{"seconds": time.perf_counter() - start}}), flush=True)
"""


def main() -> None:
    from peer_process import JsonWorker, alternating_rounds, peer_arguments
    from scipy.stats import spearmanr
    from throughput import load_pairs

    args = peer_arguments(__doc__.splitlines()[0], "--st-python",
                          "python of an environment with sentence-transformers and optimum[onnxruntime]")

    import torch

    torch.set_num_threads(args.threads)
    from crossrank import CrossEncoder
    from crossrank.engine.backends import cpu_features
    from crossrank.model.default import default_model_dir

    pairs = load_pairs(args.data, args.queries)
    reference = CrossEncoder(use_ensemble=False).score(pairs)
    ours = CrossEncoder(backend="onnx", dtype="int8", use_ensemble=False)
    ours_scores = ours.score(pairs)
    with tempfile.TemporaryDirectory() as work:
        folder = Path(work) / "model"
        shutil.copytree(default_model_dir(), folder, ignore=shutil.ignore_patterns(".crossrank-exports"))
        (Path(work) / "pairs.json").write_text(json.dumps([list(p) for p in pairs]))
        code = WORKER.format(threads=args.threads, folder=str(folder), pairs=str(Path(work) / "pairs.json"))
        worker = JsonWorker(args.st_python, code)
        first = worker.first
        st_scores = np.array(first["scores"], dtype=np.float32)
        st = worker.seconds

        def crossrank_int8() -> float:
            start = time.perf_counter()
            ours.score(pairs)
            return time.perf_counter() - start

        runners = {"crossrank onnx int8": crossrank_int8, "sentence-transformers onnx int8 (avx512_vnni)":
                   lambda: st("int8"), "sentence-transformers predict (torch fp32)": lambda: st("fp32")}
        times = alternating_rounds(runners, args.rounds, len(pairs))
        worker.close()

    base = len(pairs) / min(times["sentence-transformers predict (torch fp32)"])
    rows = {}
    for name, t in times.items():
        scores = {"crossrank onnx int8": ours_scores,
                  "sentence-transformers onnx int8 (avx512_vnni)": st_scores}.get(name)
        rows[name] = {"pairs_per_second": len(pairs) / min(t), "ratio_to_st_fp32": len(pairs) / min(t) / base,
                      "spearman_vs_fp32": None if scores is None else float(spearmanr(scores, reference)[0]),
                      "max_abs_diff_vs_fp32": None if scores is None else float(np.abs(scores - reference).max())}
    ratio = rows["crossrank onnx int8"]["pairs_per_second"] / rows[
        "sentence-transformers onnx int8 (avx512_vnni)"]["pairs_per_second"]
    result = {"pairs": len(pairs), "threads": args.threads, "rounds": args.rounds, "cpu_features": cpu_features(),
              "peer_versions": first["versions"], "rows": rows, "crossrank_over_st_int8": ratio}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "st_onnx_int8.json").write_text(json.dumps(result, indent=2))
    lines = ["# crossrank int8 against sentence-transformers' ONNX int8", "",
             f"{len(pairs)} TREC DL 2020 BM25 pairs, the shipped default's cross-encoder, {args.threads} threads, "
             f"best of {args.rounds} alternating rounds; sentence-transformers "
             f"{first['versions']['sentence_transformers']} (transformers {first['versions']['transformers']}, "
             f"onnxruntime {first['versions']['onnxruntime']}) in its own environment, driven by "
             "`benchmarks/st_onnx_int8.py`.", "",
             "| engine | pairs/s | x sentence-transformers fp32 | Spearman vs fp32 | max score diff vs fp32 |",
             "|---|---|---|---|---|"]
    for name, row in rows.items():
        fidelity = ("-", "-") if row["spearman_vs_fp32"] is None else (
            f"{row['spearman_vs_fp32']:.5f}", f"{row['max_abs_diff_vs_fp32']:.3f}")
        lines.append(f"| {name} | {row['pairs_per_second']:.1f} | {row['ratio_to_st_fp32']:.2f}x | "
                     f"{fidelity[0]} | {fidelity[1]} |")
    lines += ["", f"**crossrank int8 / sentence-transformers int8: {ratio:.2f}x**"]
    (args.out / "st_onnx_int8.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
