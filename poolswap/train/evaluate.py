"""Evaluation: top-1/top-5 (all outputs and restricted to the data's classes) and agreement between models."""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from typing import Optional, Sequence, Union

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from ..errors import PoolswapError
from .distributed import DistributedContext, all_reduce_sum

__all__ = ["EvalResult", "evaluate", "Metrics"]

logger = logging.getLogger(__name__)


@dataclass
class EvalResult:
    """Accuracies are fractions in [0, 1]; ``None`` where there were no labels or no second model."""

    samples: int
    top1: Optional[float] = None
    top5: Optional[float] = None
    top1_subset: Optional[float] = None  # top-1 among the outputs the data's classes map to
    agreement: Optional[float] = None  # top-1 of this model == top-1 of the other one
    other_top1: Optional[float] = None
    other_top1_subset: Optional[float] = None

    def as_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        parts = [f"{self.samples} images"]
        for key in ("top1", "top5", "top1_subset", "agreement", "other_top1", "other_top1_subset"):
            value = getattr(self, key)
            if value is not None:
                parts.append(f"{key} {value:.4f}")
        return ", ".join(parts)


class Metrics:
    """Running counts of correct predictions and agreement, reducible over ranks."""

    KEYS = ("samples", "labelled", "top1", "top5", "top1_subset", "agree", "other_top1", "other_top1_subset")

    def __init__(self, label_map: Optional[Sequence[int]] = None) -> None:
        self.counts = dict.fromkeys(self.KEYS, 0.0)
        self.label_map = torch.tensor(list(label_map)) if label_map is not None else None

    def targets(self, labels: torch.Tensor) -> torch.Tensor:
        """Folder class indices as model output indices (-1 stays -1: unlabelled)."""
        if self.label_map is None:
            return labels
        lm = self.label_map.to(labels.device)
        return torch.where(labels >= 0, lm[labels.clamp(min=0)], labels)

    @torch.no_grad()
    def update(self, logits: torch.Tensor, targets: Optional[torch.Tensor], other: Optional[torch.Tensor] = None):
        logits = logits.float()
        c = self.counts
        c["samples"] += logits.shape[0]
        top1 = logits.argmax(1)
        if other is not None:
            if other.shape != logits.shape:
                raise PoolswapError(
                    f"the two models' outputs differ in shape ({tuple(logits.shape[1:])} and {tuple(other.shape[1:])}): "
                    f"agreement needs models with the same classes (check --num-classes or the checkpoints' heads)")
            c["agree"] += float((top1 == other.argmax(1)).sum())
        if targets is None:
            return
        labelled = targets >= 0
        if not bool(labelled.any()):
            return
        logits, targets = logits[labelled], targets[labelled]
        c["labelled"] += targets.shape[0]
        k = min(5, logits.shape[1])
        topk = logits.topk(k, dim=1).indices
        c["top1"] += float((topk[:, 0] == targets).sum())
        c["top5"] += float((topk == targets[:, None]).any(1).sum())
        if self.label_map is not None:
            lm = self.label_map.to(logits.device)
            c["top1_subset"] += float((lm[logits[:, lm].argmax(1)] == targets).sum())
        if other is not None:
            other = other.float()[labelled]
            c["other_top1"] += float((other.argmax(1) == targets).sum())
            if self.label_map is not None:
                c["other_top1_subset"] += float((lm[other[:, lm].argmax(1)] == targets).sum())

    def reduce(self, ctx: Optional[DistributedContext]) -> None:
        if ctx is not None and ctx.distributed:
            self.counts = dict(zip(self.KEYS, all_reduce_sum([self.counts[k] for k in self.KEYS], ctx)))

    def result(self, *, with_other: bool) -> EvalResult:
        c = self.counts
        n, labelled = int(c["samples"]), c["labelled"]

        def frac(key: str, denominator: float) -> Optional[float]:
            return c[key] / denominator if denominator else None

        return EvalResult(
            samples=n,
            top1=frac("top1", labelled),
            top5=frac("top5", labelled),
            top1_subset=frac("top1_subset", labelled) if self.label_map is not None else None,
            agreement=frac("agree", n) if with_other else None,
            other_top1=frac("other_top1", labelled) if with_other else None,
            other_top1_subset=frac("other_top1_subset", labelled) if with_other and self.label_map is not None else None,
        )


def _loader(data, batch_size: int, workers: int, ctx: Optional[DistributedContext]) -> DataLoader:
    if isinstance(data, DataLoader):
        return data
    if ctx is not None and ctx.distributed:
        data = Subset(data, list(range(ctx.rank, len(data), ctx.world_size)))
    return DataLoader(data, batch_size=batch_size, shuffle=False, num_workers=workers)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: Union[Dataset, DataLoader, str, os.PathLike],
    *,
    against: Optional[nn.Module] = None,
    label_map: Optional[Sequence[int]] = None,
    batch_size: int = 64,
    workers: int = 0,
    device: Union[str, torch.device, None] = None,
    data_config: Optional[dict] = None,
    ctx: Optional[DistributedContext] = None,
    progress: bool = False,
    skip_bad_images: bool = False,
) -> EvalResult:
    """Top-1/top-5 of ``model`` on ``data`` and, with ``against``, agreement between the two models.

    ``data`` is a Dataset, a DataLoader or an image folder (preprocessed with the
    model's data config, see :func:`poolswap.data.resolve_data_config`);
    labels of -1 are unlabelled. ``label_map`` maps folder classes to model
    outputs (found from the folder's class names when ``data`` is a folder).
    ``skip_bad_images``: drop a folder's files that do not decode (with a warning)
    instead of stopping at the first.
    """
    from ..device import resolve_device
    from ..data.datasets import build_transform, dataset_classes, image_dataset, resolve_data_config
    from ..data.datasets import label_map as find_label_map

    if device is None:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
    device = resolve_device(device)
    if isinstance(data, (str, os.PathLike)):
        config = resolve_data_config(model, overrides=data_config)
        data = image_dataset(data, build_transform(config), channels=config["input_size"][0],
                             skip_bad_images=skip_bad_images)
    was_training = model.training
    model.eval()
    other_training = against.training if against is not None else False
    if against is not None:
        against.eval()
    loader = _loader(data, batch_size, workers, ctx)
    metrics: Optional[Metrics] = None
    try:
        iterator = loader
        if progress:
            from tqdm.auto import tqdm

            iterator = tqdm(loader, desc="eval", leave=False, dynamic_ncols=True, disable=None)  # off a terminal: off
        for batch in iterator:
            images, labels = (batch[0], batch[1]) if isinstance(batch, (tuple, list)) else (batch, None)
            images = images.to(device, non_blocking=True)
            logits = model(images)
            if metrics is None:
                if label_map is None and isinstance(data, Dataset):
                    classes = dataset_classes(data.dataset if isinstance(data, Subset) else data)
                    label_map = find_label_map(classes, logits.shape[1]) if classes else None
                metrics = Metrics(label_map)
            other = against(images) if against is not None else None
            targets = metrics.targets(torch.as_tensor(labels).to(device)) if labels is not None else None
            metrics.update(logits, targets, other)
    finally:
        model.train(was_training)
        if against is not None:
            against.train(other_training)
    if metrics is None:
        metrics = Metrics(label_map)
    metrics.reduce(ctx)
    return metrics.result(with_other=against is not None)
