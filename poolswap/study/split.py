"""The study's split of an image pool into fine-tune and evaluation images: deterministic and class-balanced.

Each class's files are ordered by a hash of their path relative to the pool (so the split
does not depend on listing order, machine or run) and the first ``eval_fraction`` of each
class (at least one image) are held out for evaluation; the rest fine-tune and calibrate.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from ..errors import PoolswapError

__all__ = ["Split", "class_balanced_indices", "pool_samples", "split_samples"]


@dataclass
class Split:
    """``train``/``eval``: (relative path, class index) pairs; ``classes``: names, empty when unlabelled."""

    classes: list[str]
    train: list[tuple[str, int]] = field(default_factory=list)
    eval: list[tuple[str, int]] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"classes": self.classes, "train": [list(s) for s in self.train], "eval": [list(s) for s in self.eval]}


def class_balanced_indices(targets: Sequence[int], limit: Optional[int]) -> list[int]:
    """``limit // classes`` indices of each class, evenly spaced through its (sorted) files; all when ``limit`` is None."""
    if limit is None:
        return list(range(len(targets)))
    classes = sorted(set(targets))
    per_class = limit // len(classes)
    if per_class < 1:
        raise PoolswapError(f"a limit of {limit} images gives no image per class ({len(classes)} classes); raise it")
    chosen = []
    for c in classes:
        members = [i for i, t in enumerate(targets) if t == c]
        if per_class > len(members):
            raise PoolswapError(f"class {c} has {len(members)} images, fewer than the {per_class} asked for; "
                                "lower the limit")
        step = len(members) / per_class
        chosen.extend(members[int(k * step)] for k in range(per_class))
    return sorted(chosen)


def pool_samples(root: os.PathLike) -> tuple[list[str], list[tuple[str, int]]]:
    """Every image of ``root`` (class folders, or images straight under it), or of ``root/train`` and
    ``root/val`` together where it has those: (class names, (path relative to ``root``, class index))."""
    from ..data.datasets import _is_image

    root = Path(root)
    if not root.is_dir():
        raise PoolswapError(f"data folder {root} does not exist")
    parts = [root / name for name in ("train", "val") if (root / name).is_dir()] or [root]
    classes = sorted({p.name for part in parts for p in part.iterdir() if p.is_dir() and not p.name.startswith(".")})
    samples: list[tuple[str, int]] = []
    for part in parts:
        if classes:
            for index, name in enumerate(classes):
                folder = part / name
                if folder.is_dir():
                    samples += [(str(f.relative_to(root)), index) for f in sorted(folder.rglob("*")) if _is_image(f)]
        else:
            samples += [(str(f.relative_to(root)), -1) for f in sorted(part.iterdir()) if _is_image(f)]
    return classes, samples


def _key(path: str) -> str:
    return hashlib.sha256(Path(path).as_posix().encode()).hexdigest()


def split_samples(classes: Sequence[str], samples: Sequence[tuple[str, int]], *, eval_fraction: float,
                  max_eval: Optional[int] = None, max_train: Optional[int] = None) -> Split:
    """Hold out ``eval_fraction`` of each class (at least one image; at most ``max_eval`` in all, spread
    evenly over classes); the rest (at most ``max_train``, evenly) are for fine-tuning."""
    if not samples:
        raise PoolswapError("the data folder holds no images")
    if len(classes) == 1:
        raise PoolswapError(f"the data has one class only ({classes[0]}): a study needs two or more class folders "
                            "(or unlabelled images straight under the folder)")
    groups: dict[int, list[tuple[str, int]]] = {}
    for sample in samples:
        groups.setdefault(sample[1], []).append(sample)
    n_groups = len(groups)
    split = Split(classes=list(classes))
    for label in sorted(groups):
        members = sorted(groups[label], key=lambda s: _key(s[0]))
        name = classes[label] if label >= 0 else "the pool"
        if len(members) < 2:
            raise PoolswapError(f"too few images to split: {name} has {len(members)}; the study holds out at least "
                                "one image per class and fine-tunes on the others")
        n_eval = min(len(members) - 1, max(1, round(eval_fraction * len(members))))
        if max_eval is not None:
            n_eval = min(n_eval, max(1, max_eval // n_groups))
        train = members[n_eval:]
        if max_train is not None:
            train = train[:max(1, max_train // n_groups)]
        split.eval += members[:n_eval]
        split.train += train
    split.eval.sort()
    split.train.sort()
    return split
