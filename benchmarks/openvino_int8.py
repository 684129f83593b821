"""OpenVINO (fp32, and static int8 calibrated with NNCF) against crossrank's ONNX Runtime backends, one script.

OpenVINO is not a crossrank backend: this measures whether it should be. It runs crossrank's own exported
fp32 graph (the same [CLS]-only last layer) in a second virtual environment (``--ov-python``, with
``openvino`` and ``nncf``), as a worker process this script drives round by round. The worker gets the
very batches crossrank's engine builds (token-budget, length-sorted, padded), so only the runtime differs.
Static int8: ``nncf.quantize(model_type=TRANSFORMER)``, calibrated on the built-in sample pairs.

    python -m venv ../venv-ov && ../venv-ov/bin/pip install openvino nncf torch==2.13.0
    python benchmarks/openvino_int8.py --ov-python ../venv-ov/bin/python
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

WORKER = r"""
import json, sys, time, numpy as np, openvino as ov, nncf
work = {work!r}
batches = [dict(np.load(f"{{work}}/batch-{{i}}.npz")) for i in range({n_batches})]
order = np.load(f"{{work}}/order.npy")
calibration = [dict(np.load(f"{{work}}/calib-{{i}}.npz")) for i in range({n_calib})]
core = ov.Core()
model = core.read_model({graph!r})
config = {{"INFERENCE_NUM_THREADS": {threads}, "PERFORMANCE_HINT": "LATENCY"}}
compiled = {{"fp32": core.compile_model(model, "CPU", {{**config, "INFERENCE_PRECISION_HINT": "f32"}})}}
import contextlib
with contextlib.redirect_stdout(sys.stderr):  # NNCF's progress bars
    quantized = nncf.quantize(model, nncf.Dataset(calibration), model_type=nncf.ModelType.TRANSFORMER,
                              subset_size=len(calibration))
compiled["int8"] = core.compile_model(quantized, "CPU", {{**config, "INFERENCE_PRECISION_HINT": "f32"}})
requests = {{k: c.create_infer_request() for k, c in compiled.items()}}
def run(kind):
    out = [requests[kind].infer(b)[0].reshape(-1).copy() for b in batches]
    scores = np.empty(len(order), dtype=np.float32)
    scores[order] = np.concatenate(out)
    return scores
first = {{k: run(k).tolist() for k in compiled}}
print(json.dumps({{"version": ov.__version__, "nncf": nncf.__version__, "scores": first}}), flush=True)
for line in sys.stdin:
    start = time.perf_counter(); run(line.strip())
    print(json.dumps({{"seconds": time.perf_counter() - start}}), flush=True)
"""


def main() -> None:
    from peer_process import JsonWorker, alternating_rounds, peer_arguments
    from scipy.stats import spearmanr
    from throughput import load_pairs

    args = peer_arguments(__doc__.splitlines()[0], "--ov-python", "python of an environment with openvino and nncf")

    import torch

    torch.set_num_threads(args.threads)
    from crossrank import CrossEncoder
    from crossrank.engine.agreement import builtin_sample
    from crossrank.engine.batching import plan_batches
    from crossrank.engine.scorer import pad_batch

    pairs = load_pairs(args.data, args.queries)
    reference = CrossEncoder(use_ensemble=False).score(pairs)
    engines = {f"crossrank onnx {d}": CrossEncoder(backend="onnx", dtype=d, use_ensemble=False)
               for d in ("float32", "int8")}
    fp32_graph = engines["crossrank onnx float32"].engine.backend.graph
    tokenizer = engines["crossrank onnx float32"].engine.tokenizer
    with tempfile.TemporaryDirectory() as work:
        def save(name, queries, documents):
            tokens = tokenizer(queries, documents)
            plan = plan_batches(tokens.lengths, engines["crossrank onnx int8"].engine.batch_tokens)
            for i, batch in enumerate(plan):
                ids, mask, types = pad_batch(tokens, batch, tokenizer.pad_id)
                arrays = {"input_ids": ids, "attention_mask": mask} | ({} if types is None else {"token_type_ids": types})
                np.savez(f"{work}/{name}-{i}.npz", **arrays)
            return plan

        plan = save("batch", [q for q, _ in pairs], [d for _, d in pairs])
        np.save(f"{work}/order.npy", np.concatenate(plan))
        sample = builtin_sample()
        n_calib = len(save("calib", sample.queries, sample.documents))
        code = WORKER.format(work=work, n_batches=len(plan), n_calib=n_calib, graph=str(fp32_graph),
                             threads=args.threads)
        worker = JsonWorker(args.ov_python, code)
        first = worker.first
        ov_run = worker.seconds

        def ours(ce) -> float:
            start = time.perf_counter()
            ce.score(pairs)
            return time.perf_counter() - start

        runners = {name: (lambda ce=ce: ours(ce)) for name, ce in engines.items()}
        runners |= {f"openvino {k}": (lambda k=k: ov_run(k)) for k in ("fp32", "int8")}
        scores = {name: ce.score(pairs) for name, ce in engines.items()}
        scores |= {f"openvino {k}": np.array(v, dtype=np.float32) for k, v in first["scores"].items()}
        times = alternating_rounds(runners, args.rounds, len(pairs))
        worker.close()

    rows = {name: {"pairs_per_second": len(pairs) / min(t),
                   "spearman_vs_fp32": float(spearmanr(scores[name], reference)[0]),
                   "max_abs_diff_vs_fp32": float(np.abs(scores[name] - reference).max())} for name, t in times.items()}
    result = {"pairs": len(pairs), "threads": args.threads, "openvino": first["version"], "nncf": first["nncf"],
              "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "openvino_int8.json").write_text(json.dumps(result, indent=2))
    lines = ["# OpenVINO against crossrank's ONNX Runtime backends", "",
             f"{len(pairs)} TREC DL 2020 BM25 pairs, the shipped default's cross-encoder graph, the engine's own "
             f"batches, {args.threads} threads, best of {args.rounds} alternating rounds; OpenVINO "
             f"{first['version']}, NNCF {first['nncf']} (static int8, calibrated on the built-in sample).", "",
             "| runtime | pairs/s | Spearman vs torch fp32 | max score diff |", "|---|---|---|---|"]
    lines += [f"| {n} | {r['pairs_per_second']:.1f} | {r['spearman_vs_fp32']:.5f} | {r['max_abs_diff_vs_fp32']:.3f} |"
              for n, r in rows.items()]
    (args.out / "openvino_int8.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
