"""``lr='auto'``: a short learning-rate range test that keeps agreement with the teacher.

Each candidate rate, smallest first, trains a copy of the student's starting state for a
few steps (the run's optimiser and loss, constant rate) and then measures its top-1
agreement with the teacher on held-out batches (images the steps did not see). The
largest rate that keeps the agreement within ``tolerance`` of where it started is chosen;
the first rate that does not ends the search (larger ones only do more harm).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Optional, Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from ..errors import PoolswapError
from .config import FinetuneConfig
from .distill import distillation_loss
from .optim import build_optimizer, train_mode

__all__ = ["CANDIDATE_LRS", "LrFindResult", "find_lr"]

logger = logging.getLogger("poolswap.train")

#: half-decade steps from 1e-7 to 1e-2
CANDIDATE_LRS = (1e-7, 3e-7, 1e-6, 3e-6, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2)


@dataclass
class LrFindResult:
    """The chosen rate, the agreement it started from, and each rate tried (``lr``, ``agreement``, ``kept``)."""

    lr: float
    start_agreement: float
    trials: list[dict] = field(default_factory=list)
    steps: int = 0
    held_out: int = 0

    def summary(self) -> str:
        tried = ", ".join(f"{t['lr']:g}: {t['agreement']:.3f}" for t in self.trials)
        return (f"lr auto: chose {self.lr:g}, the largest rate that kept agreement with the teacher "
                f"(from {self.start_agreement:.3f}) on {self.held_out} held-out images after {self.steps} steps "
                f"[{tried}]")

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@torch.no_grad()
def _agreement(student: nn.Module, batches: Sequence[torch.Tensor], teacher_top1: Sequence[torch.Tensor]) -> float:
    was_training = student.training
    student.eval()
    try:
        agree = sum(int((student(x).argmax(1) == t).sum()) for x, t in zip(batches, teacher_top1))
    finally:
        student.train(was_training)
    return agree / max(1, sum(int(t.numel()) for t in teacher_top1))


def find_lr(
    model: nn.Module,
    teacher: nn.Module,
    data: Dataset,
    config: FinetuneConfig,
    *,
    device: torch.device,
    label_map: Optional[Sequence[int]] = None,
    steps: int = 4,
    held_out_batches: int = 2,
    tolerance: float = 0.02,
    candidates: Sequence[float] = CANDIDATE_LRS,
    seed: int = 0,
) -> LrFindResult:
    """The largest of ``candidates`` whose ``steps`` training steps keep agreement >= start - ``tolerance``.

    ``model`` is left exactly as it was (its state is restored after every trial).
    ``data`` yields (image, label) like the run's training set; ``config`` gives the
    optimiser, batch size and loss (its ``lr`` is replaced by each candidate).
    """
    n = len(data)
    if n < 2:
        raise PoolswapError(f"lr auto needs at least 2 training images, got {n}")
    batch_size = config.batch_size
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=generator).tolist()
    n_held = min(held_out_batches * batch_size, max(1, n // 4))
    held, train = order[:n_held], order[n_held:]
    held_loader = DataLoader(Subset(data, held), batch_size=batch_size, shuffle=False)
    teacher.eval()
    held_images, teacher_top1 = [], []
    with torch.no_grad():
        for batch in held_loader:
            images = (batch[0] if isinstance(batch, (tuple, list)) else batch).to(device)
            held_images.append(images)
            teacher_top1.append(teacher(images).argmax(1))
    train_batches = []
    for i in range(steps):
        chunk = [train[(i * batch_size + j) % len(train)] for j in range(min(batch_size, len(train)))]
        train_batches.append(next(iter(DataLoader(Subset(data, chunk), batch_size=len(chunk), shuffle=False))))
    label_tensor = torch.tensor(list(label_map), device=device) if label_map is not None else None

    start_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    start = _agreement(model, held_images, teacher_top1)
    trials: list[dict] = []
    chosen: Optional[float] = None
    was_training = model.training
    try:
        for lr in sorted(candidates):
            trial_config = dataclasses.replace(config, lr=float(lr))
            optimizer = build_optimizer(model, trial_config)
            train_mode(model, trial_config)
            for batch in train_batches:
                images, labels = (batch[0], batch[1]) if isinstance(batch, (tuple, list)) else (batch, None)
                images = images.to(device)
                targets = None
                if labels is not None:
                    labels = torch.as_tensor(labels).to(device)
                    targets = labels
                    if label_tensor is not None:
                        targets = torch.where(labels >= 0, label_tensor[labels.clamp(min=0)], labels)
                with torch.no_grad():
                    t_logits = teacher(images)
                loss = distillation_loss(model(images), t_logits, targets, alpha=config.alpha,
                                         temperature=config.temperature)
                optimizer.zero_grad(set_to_none=True)
                if not torch.isfinite(loss):
                    break
                loss.backward()
                optimizer.step()
            agreement = _agreement(model, held_images, teacher_top1)
            kept = agreement >= start - tolerance and all(torch.isfinite(v).all() for v in model.state_dict().values()
                                                          if v.is_floating_point())
            trials.append({"lr": float(lr), "agreement": agreement, "kept": bool(kept)})
            model.load_state_dict(start_state)
            if not kept:
                break
            chosen = float(lr)
    finally:
        model.load_state_dict(start_state)
        model.train(was_training)
    if chosen is None:
        raise PoolswapError(f"lr auto: even the smallest rate tried ({min(candidates):g}) lowered agreement with the "
                            f"teacher from {start:.3f} to {trials[0]['agreement']:.3f} in {steps} steps; give --lr "
                            "explicitly, or check the teacher")
    return LrFindResult(lr=chosen, start_agreement=start, trials=trials, steps=steps, held_out=n_held)
