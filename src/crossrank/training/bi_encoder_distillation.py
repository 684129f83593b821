"""Distil a cross-encoder into the bi-encoder (the dense first stage) with Margin-MSE.

The cross-encoder reads query and document together and ranks better than the bi-encoder, but only the
bi-encoder can search a whole collection. Training the bi-encoder to reproduce the cross-encoder's score
*margins* between a positive and a negative (Hofstätter et al. 2020, the loss in
``crossrank.training.losses.margin_mse``) moves some of that precision into the first stage, so the
reranker starts from better candidates.

The student's score is ``scale * cosine``: all-MiniLM-L6-v2 normalises its embeddings, and a cosine
lives in [-1, 1] while cross-encoder margins span several units; the scale puts them on one footing.
"""

from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from crossrank.model.loading import quiet_loading
from crossrank.training.losses.margin_mse import margin_mse
from crossrank.training.precision import autocast_dtype
from crossrank.training.negatives import TrainingGroup

logger = logging.getLogger(__name__)


@dataclass
class DistillConfig:
    epochs: float = 1.0
    learning_rate: float = 2e-5
    groups_per_batch: int = 8
    scale: float = 20.0  # student score = scale * cosine
    max_length: int = 256
    warmup_ratio: float = 0.1
    seed: int = 0
    precision: str = "auto"  # see crossrank.training.precision


@dataclass
class DistillResult:
    steps: int
    seconds: float
    losses: list[float] = field(default_factory=list)
    output_dir: str = ""


def teacher_groups(groups: Sequence[TrainingGroup], teacher_score: Callable[[list[tuple[str, str]]], np.ndarray]
                   ) -> list[TrainingGroup]:
    """The same groups ([positive, *negatives]) with labels replaced by the teacher's scores."""
    pairs = [(g.query, d) for g in groups for d in g.documents]
    scores = np.asarray(teacher_score(pairs), dtype=np.float64)
    out, start = [], 0
    for g in groups:
        end = start + len(g.documents)
        out.append(TrainingGroup(g.query_id, g.query, list(g.documents), [float(s) for s in scores[start:end]]))
        start = end
    return out


def distil_bi_encoder(student: str | Path, groups: Sequence[TrainingGroup], output_dir: str | Path,
                      config: DistillConfig = DistillConfig(), device: str = "cpu",
                      progress: Callable[[int, float], None] | None = None) -> DistillResult:
    """Train the sentence-transformers model in ``student`` on teacher-scored groups; save it to ``output_dir``.

    Each group is [positive, *negatives] with teacher scores as labels (see ``teacher_groups``).
    """
    from sentence_transformers import SentenceTransformer

    from crossrank.engine.torch_backend import resolve_device

    resolved = resolve_device(device)
    amp_dtype = autocast_dtype(config.precision, resolved, fp16_ok=False)  # no loss scaling in this loop
    groups = [g for g in groups if len(g.documents) >= 2]
    if not groups:
        raise ValueError("distillation needs groups of a positive and at least one negative")
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    with quiet_loading():
        model = SentenceTransformer(str(student), device=str(resolved), local_files_only=True)
    model.max_seq_length = config.max_length
    model.train()
    rng = random.Random(config.seed)
    per_epoch = math.ceil(len(groups) / config.groups_per_batch)
    total = max(1, int(per_epoch * config.epochs))
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=0.01)
    warmup = int(total * config.warmup_ratio)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: (s + 1) / max(1, warmup) if s < warmup else max(0.0, (total - s) / max(1, total - warmup)))
    result = DistillResult(steps=0, seconds=0.0, output_dir=str(output_dir))
    started = time.perf_counter()
    step = 0
    while step < total:
        order = list(groups)
        rng.shuffle(order)
        for start in range(0, len(order), config.groups_per_batch):
            if step >= total:
                break
            batch = order[start:start + config.groups_per_batch]
            width = min(len(g.documents) for g in batch)  # equal widths: Margin-MSE compares column 0 to the rest
            with torch.autocast(resolved.type, dtype=amp_dtype or torch.float32,
                                enabled=amp_dtype is not None):
                queries = _embed(model, [g.query for g in batch], resolved).float()
                docs = _embed(model, [d for g in batch for d in g.documents[:width]], resolved).float()
            scores = config.scale * torch.einsum("gd,gnd->gn", queries, docs.view(len(batch), width, -1))
            teacher = torch.tensor([g.labels[:width] for g in batch], dtype=scores.dtype, device=scores.device)
            loss = margin_mse(scores, teacher)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            step += 1
            result.losses.append(float(loss.detach()))
            if progress is not None:
                progress(step, result.losses[-1])
    result.steps = step
    result.seconds = time.perf_counter() - started
    model.eval()
    output_dir = Path(output_dir)
    tmp = output_dir.with_name(output_dir.name + ".tmp")
    model.save(str(tmp), safe_serialization=True)
    if output_dir.exists():
        import shutil

        shutil.rmtree(output_dir)
    tmp.rename(output_dir)
    logger.info("distilled bi-encoder: %d steps in %.0f s, loss %.3f -> %.3f", step, result.seconds,
                result.losses[0], result.losses[-1])
    return result


def _embed(model, texts: list[str], device: torch.device) -> torch.Tensor:
    prepare = getattr(model, "preprocess", None) or model.tokenize  # sentence-transformers >= 6 renamed it
    features = prepare(texts)
    features = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in features.items()}
    embeddings = model(features)["sentence_embedding"]
    return torch.nn.functional.normalize(embeddings, dim=-1)
