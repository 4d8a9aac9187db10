#!/usr/bin/env python3
"""The material of BENCHMARKS.md's "default fine-tune" rows: a held-out split of the shared Imagenette, and a
pretrained BatchNorm network (the demo's CNN, trained here from scratch) to convert and fine-tune::

    python benchmarks/default_finetune_data.py OUT [--data ../shared/data] [--epochs 12]

writes (as symbolic links to the shared images, nothing copied)
``OUT/data/train`` (the 1,000 Imagenette train images), ``OUT/data/val`` (491
held-out images: every 8th file of each class of Imagenette's val, at most 50
per class) and ``OUT/pretrain/train`` (every other image: the 1,000 and the
remaining 3,434), then trains ``poolswap.demo.model:digits_cnn`` (width 32,
three conv-BatchNorm-ReLU blocks, max pooling) at 64x64 on ``OUT/pretrain`` and
saves its state dict as ``OUT/bn_cnn.pth``. The held-out images are never
trained on.
"""

from __future__ import annotations

import argparse
import copy
import logging
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _imagenette import DATA_CONFIG as IMAGENETTE_CONFIG, default_data_dir  # noqa: E402

logger = logging.getLogger("default_finetune_data")

# the shared images' preprocessing (as they are, ImageNet mean and std), at the small network's 64x64
DATA_CONFIG = {**IMAGENETTE_CONFIG, "input_size": (3, 64, 64)}
MODEL_KWARGS = {"num_classes": 10, "in_chans": 3, "width": 32}


def _link(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        os.symlink(source.resolve(), target)


def make_split(imagenette: Path, out: Path) -> tuple[int, int, int]:
    """Link the train, held-out and pretraining folders; returns their image counts."""
    held = set()
    for class_dir in sorted(p for p in (imagenette / "val").iterdir() if p.is_dir()):
        for path in sorted(class_dir.iterdir())[::8][:50]:
            held.add(path)
            _link(path, out / "data" / "val" / class_dir.name / path.name)
    counts = [0, len(held), 0]
    for split in ("train", "val"):
        for class_dir in sorted(p for p in (imagenette / split).iterdir() if p.is_dir()):
            for path in sorted(class_dir.iterdir()):
                if path in held:
                    continue
                if split == "train":
                    _link(path, out / "data" / "train" / class_dir.name / path.name)
                    counts[0] += 1
                _link(path, out / "pretrain" / "train" / class_dir.name / f"{split}_{path.name}")
                counts[2] += 1
    return counts[0], counts[1], counts[2]


def pretrain(out: Path, epochs: int) -> dict:
    """Train the demo's CNN from random weights with labels (random-resized crops, flips, dropout-free network)."""
    from poolswap.data.datasets import build_transform, image_dataset
    from poolswap.model import create_model
    from poolswap.train import FinetuneConfig, finetune

    torch.manual_seed(0)
    model = create_model("poolswap.demo.model:digits_cnn", **MODEL_KWARGS)
    train = image_dataset(out / "pretrain" / "train",
                          build_transform(DATA_CONFIG, train=True, hflip=True, random_crop=True))
    config = FinetuneConfig(epochs=epochs, batch_size=64, lr=2e-3, alpha=0.0, freeze_bn=False, dropout=True,
                            data_config=DATA_CONFIG, seed=0)
    result = finetune(model, teacher=copy.deepcopy(model).eval(), train_data=train,
                      val_data=out / "data" / "val", config=config, progress=False)
    torch.save(model.state_dict(), out / "bn_cnn.pth")
    return result.history[-1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--data", type=Path, default=None, help="the shared data folder (default: beside the checkout)")
    parser.add_argument("--epochs", type=int, default=12)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    imagenette = (args.data or default_data_dir()) / "imagenette"
    train, held, pre = make_split(imagenette, args.out)
    logger.info("linked %d train, %d held-out and %d pretraining images under %s", train, held, pre, args.out)
    last = pretrain(args.out, args.epochs)
    logger.info("pretrained %s: held-out top-1 %.3f after %d epochs", args.out / "bn_cnn.pth", last["val_top1"],
                args.epochs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
