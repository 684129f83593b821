"""Fine-tune a cross-encoder: a plain PyTorch loop over groups of (query, documents, targets).

Seeded and reproducible; batches of groups sorted by length within shuffled buckets (less padding on
CPU); gradient accumulation; linear warm-up and decay; mixed precision (bf16/fp16 on CUDA, bf16 on CPU
when asked); checkpoints with
optimizer state for ``resume``; evaluation on a dev set during training with the best checkpoint kept.
"""

from __future__ import annotations

import json
import logging
import math
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from crossrank.engine.scorer import ScoringEngine, pad_batch
from crossrank.engine.torch_backend import TorchBackend, resolve_device
from crossrank.model.loading import LoadedModel, quiet_loading
from crossrank.model.settings import CrossEncoderSettings
from crossrank.model.source import resolve_model_dir
from crossrank.model.tokenization import PairTokenizer
from crossrank.training.losses import LOSSES
from crossrank.training.precision import autocast_dtype
from crossrank.training.negatives import TrainingGroup

logger = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    loss: str = "listwise"
    epochs: float = 1.0
    learning_rate: float = 3e-5
    groups_per_batch: int = 8
    gradient_accumulation: int = 1
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_length: int = 256
    query_max_tokens: int = 64
    seed: int = 0
    eval_every: int = 0  # optimizer steps between dev evaluations (0: once per epoch)
    checkpoint_every: int = 0  # optimizer steps between checkpoints (0: with each evaluation)
    precision: str = "auto"  # see crossrank.training.precision: "bf16" is also fast on CPUs with AMX


@dataclass
class TrainResult:
    steps: int
    seconds: float
    losses: list[float] = field(default_factory=list)  # mean loss per optimizer step
    dev_history: list[dict] = field(default_factory=list)
    best_dev: float | None = None
    output_dir: str = ""


def _seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load_trainable(source: str, max_length: int, query_max_tokens: int):
    """A 1-label sequence classifier from a cross-encoder folder or a plain encoder (head initialised)."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    folder = resolve_model_dir(source)
    config = AutoConfig.from_pretrained(folder)
    config.num_labels = 1
    with quiet_loading():
        model = AutoModelForSequenceClassification.from_pretrained(
            folder, config=config, dtype=torch.float32, use_safetensors=(folder / "model.safetensors").is_file(),
            weights_only=True)
    tokenizer = AutoTokenizer.from_pretrained(folder, use_fast=True)
    return model, tokenizer, PairTokenizer(tokenizer, max_length, query_max_tokens)


class Trainer:
    def __init__(self, source: str, output_dir: str | Path, config: TrainConfig, device: str = "cpu",
                 dev_metric: Callable[[Callable], float] | None = None):
        if config.loss not in LOSSES:
            raise ValueError(f"unknown loss {config.loss!r}: use one of {', '.join(LOSSES)}")
        self.device = resolve_device(device)
        autocast_dtype(config.precision, self.device)  # reject a bad precision before loading
        _seed(config.seed)
        self.config = config
        self.output_dir = Path(output_dir)
        self.model, self.hf_tokenizer, self.tokenizer = load_trainable(source, config.max_length,
                                                                       config.query_max_tokens)
        self.model.to(self.device)
        self.dev_metric = dev_metric  # called with a score(pairs) function, returns the metric to maximise

    # -- batching -------------------------------------------------------------------------------------------
    def _batches(self, groups: list[TrainingGroup], epoch: int) -> list[list[TrainingGroup]]:
        rng = random.Random(self.config.seed + epoch)
        order = list(range(len(groups)))
        rng.shuffle(order)
        size = self.config.groups_per_batch
        bucket = size * 16  # sort by length inside shuffled buckets: little padding, still random
        batches = []
        for start in range(0, len(order), bucket):
            chunk = sorted(order[start:start + bucket], key=lambda i: sum(len(d) for d in groups[i].documents))
            batches += [[groups[i] for i in chunk[j:j + size]] for j in range(0, len(chunk), size)]
        rng.shuffle(batches)
        return batches

    def _forward(self, groups: list[TrainingGroup]) -> torch.Tensor:
        width = max(len(g.documents) for g in groups)
        queries = [g.query for g in groups for _ in range(width)]
        docs = [g.documents[i] if i < len(g.documents) else "" for g in groups for i in range(width)]
        tokens = self.tokenizer(queries, docs)
        ids, mask, types = pad_batch(tokens, np.arange(len(docs)), self.tokenizer.pad_id)
        inputs = {"input_ids": torch.from_numpy(ids).to(self.device),
                  "attention_mask": torch.from_numpy(mask).to(self.device)}
        if types is not None:
            inputs["token_type_ids"] = torch.from_numpy(types).to(self.device)
        scores = self.model(**inputs).logits[:, 0].float().view(len(groups), width)
        # Padding documents of short groups get -inf-like scores so they never count as candidates.
        present = torch.tensor([[i < len(g.documents) for i in range(width)] for g in groups], device=self.device)
        return scores.masked_fill(~present, -1e4)

    def _loss(self, groups: list[TrainingGroup]) -> torch.Tensor:
        scores = self._forward(groups).float()  # losses in fp32 under autocast
        width = scores.shape[1]
        labels = torch.tensor([g.labels + [0.0] * (width - len(g.labels)) for g in groups], device=self.device)
        present = scores > -1e3  # padding rows of short groups (see _forward)
        if self.config.loss == "bce":
            return LOSSES["bce"](scores[present], labels[present])
        if self.config.loss == "listwise":
            return LOSSES["listwise"](scores, labels, present=present)
        return LOSSES[self.config.loss](scores, labels)

    # -- the loop -------------------------------------------------------------------------------------------
    def train(self, groups: list[TrainingGroup], resume: bool = False,
              progress: Callable[[int, float], None] | None = None) -> TrainResult:
        cfg = self.config
        epochs = max(1, math.ceil(cfg.epochs))
        per_epoch = math.ceil(len(self._batches(groups, 0)) / cfg.gradient_accumulation)
        total_steps = max(1, int(per_epoch * cfg.epochs))
        decay = [p for n, p in self.model.named_parameters() if not any(k in n for k in ("bias", "LayerNorm"))]
        no_decay = [p for n, p in self.model.named_parameters() if any(k in n for k in ("bias", "LayerNorm"))]
        optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                       {"params": no_decay, "weight_decay": 0.0}], lr=cfg.learning_rate)
        warmup = int(total_steps * cfg.warmup_ratio)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: (s + 1) / max(1, warmup) if s < warmup else max(0.0, (total_steps - s) / max(1, total_steps - warmup)))
        amp_dtype = autocast_dtype(cfg.precision, self.device)
        amp = amp_dtype is not None
        scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)

        result = TrainResult(steps=0, seconds=0.0, output_dir=str(self.output_dir))
        step = 0
        if resume:
            step = self._restore(optimizer, scheduler, result)
        started = time.perf_counter()
        eval_every = cfg.eval_every or per_epoch
        ckpt_every = cfg.checkpoint_every or eval_every
        self.model.train()
        done = False
        for epoch in range(epochs):
            batches = self._batches(groups, epoch)
            for index in range(0, len(batches), cfg.gradient_accumulation):
                if step >= total_steps:
                    done = True
                    break
                if (epoch * per_epoch + index // cfg.gradient_accumulation) < step:
                    continue  # resumed: skip steps already taken, same data order
                optimizer.zero_grad(set_to_none=True)
                step_loss = 0.0
                micro = batches[index:index + cfg.gradient_accumulation]
                for batch in micro:
                    with torch.autocast(self.device.type, dtype=amp_dtype or torch.float32, enabled=amp):
                        loss = self._loss(batch) / len(micro)
                    scaler.scale(loss).backward()
                    step_loss += float(loss.detach())
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                step += 1
                result.losses.append(step_loss)
                if progress is not None:
                    progress(step, step_loss)
                if self.dev_metric is not None and step % eval_every == 0:
                    self._evaluate(step, result)
                if step % ckpt_every == 0:
                    self._checkpoint(step, optimizer, scheduler, result)
            if done:
                break
        if self.dev_metric is not None and (not result.dev_history or result.dev_history[-1]["step"] != step):
            self._evaluate(step, result)
        result.steps = step
        result.seconds += time.perf_counter() - started
        self._save(self.output_dir / "final", result)
        if result.best_dev is None:  # no dev set: the final model is the best we know
            self._save(self.output_dir / "best", result)
        return result

    # -- evaluation and checkpoints ------------------------------------------------------------------------------
    def scorer(self) -> Callable:
        """score(pairs) with the model as it is now (eval mode, batch-invariant engine)."""
        loaded = LoadedModel(self.model, self.hf_tokenizer, self.output_dir, 1, CrossEncoderSettings(),
                             self.config.max_length, self.model.config.model_type)
        engine = ScoringEngine(self.tokenizer, TorchBackend(loaded, str(self.device), cls_only_last_layer=False), 4096)

        def score(pairs, progress=None):
            return engine.score([q for q, _ in pairs], [d for _, d in pairs], progress)[0]

        return score

    def _evaluate(self, step: int, result: TrainResult) -> None:
        self.model.eval()
        with torch.inference_mode():
            value = float(self.dev_metric(self.scorer()))
        self.model.train()
        result.dev_history.append({"step": step, "metric": value})
        logger.info("step %d: dev metric %.4f", step, value)
        if result.best_dev is None or value > result.best_dev:
            result.best_dev = value
            self._save(self.output_dir / "best", result)

    def _save(self, folder: Path, result: TrainResult) -> None:
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        self.model.config.architectures = [type(self.model).__name__]
        self.model.save_pretrained(tmp)
        self.hf_tokenizer.save_pretrained(tmp)
        (tmp / "training.json").write_text(json.dumps({"config": asdict(self.config), "result": asdict(result)},
                                                      indent=2))
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)

    def _checkpoint(self, step: int, optimizer, scheduler, result: TrainResult) -> None:
        folder = self.output_dir / "checkpoint"
        self._save(folder, result)
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "step": step,
                    "losses": result.losses, "dev_history": result.dev_history, "best_dev": result.best_dev},
                   folder / "trainer_state.pt")

    def _restore(self, optimizer, scheduler, result: TrainResult) -> int:
        folder = self.output_dir / "checkpoint"
        if not (folder / "trainer_state.pt").is_file():
            return 0
        from safetensors.torch import load_file

        self.model.load_state_dict(load_file(str(folder / "model.safetensors")), strict=False)
        state = torch.load(folder / "trainer_state.pt", weights_only=True)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        result.losses, result.dev_history, result.best_dev = state["losses"], state["dev_history"], state["best_dev"]
        return int(state["step"])
