#!/usr/bin/env python3
"""SqueezeNet 1.0 on Imagenette: original / SoftPool beta=1 / calibrated / after 1 epoch of distillation.

Uses the real material of ``shared/data`` (ImageNet weights of torchvision's
``squeezenet1_0``, Imagenette train subset and val). Writes a markdown table
of top-1 (1000-way and restricted to the 10 Imagenette classes), agreement
with the original and wall time of each stage::

    python benchmarks/squeezenet_imagenette.py [--data ../shared/data] [-o table.md]

``--val-limit`` / ``--train-limit`` run a reduced version (the slow test does).
"""

from __future__ import annotations

import argparse
import copy
import logging
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _imagenette import DATA_CONFIG, default_data_dir, load_squeezenet  # noqa: E402
from poolswap.train import FinetuneConfig, calibrate, finetune  # noqa: E402
from poolswap.data.datasets import build_transform, image_dataset, label_map, resolve_data_config  # noqa: E402
from poolswap.train.evaluate import Metrics  # noqa: E402

logger = logging.getLogger("benchmark")



def swap(model: nn.Module, *, learn_beta: bool) -> nn.Module:
    """A copy of ``model`` with its MaxPool sites swapped for SoftPool at beta=1."""
    from poolswap.surgery import convert

    return convert(copy.deepcopy(model), kinds=("max",), beta=1.0, learn_beta=learn_beta)


@torch.no_grad()
def predict(model: nn.Module, loader: DataLoader) -> tuple[torch.Tensor, torch.Tensor]:
    model.eval()
    logits, labels = [], []
    for images, y in loader:
        logits.append(model(images))
        labels.append(y)
    return torch.cat(logits), torch.cat(labels)


def score(logits, labels, reference, lmap) -> dict:
    metrics = Metrics(lmap)
    metrics.update(logits, metrics.targets(labels), reference)
    result = metrics.result(with_other=True)
    return {"top1": result.top1, "top1_10": result.top1_subset, "agreement": result.agreement}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=default_data_dir(), help="shared/data folder")
    parser.add_argument("-o", "--output", type=Path, default=None, help="write the markdown table here too")
    parser.add_argument("--val-limit", type=int, default=None, help="evaluate on the first N val images (every k-th)")
    parser.add_argument("--train-limit", type=int, default=None, help="train on N train images")
    parser.add_argument("--calibrate", type=int, default=1, help="calibration batches")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-5)
    parser.add_argument("--beta-lr", type=float, default=1e-2)
    parser.add_argument("--optimizer", default="adamw")
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--temperature", type=float, default=2.0)
    parser.add_argument("--run-dir", type=Path, default=None, help="fine-tune run directory (default: a temp dir)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.manual_seed(0)

    data_dir = args.data
    image_root = data_dir / "imagenette"
    transform = build_transform(resolve_data_config(overrides=DATA_CONFIG))
    val_set = image_dataset(image_root / "val", transform)
    train_set = image_dataset(image_root / "train", transform)
    lmap = label_map(val_set.classes, 1000)
    if args.val_limit:
        step = max(1, len(val_set) // args.val_limit)
        val_set = Subset(val_set, list(range(0, len(val_set), step))[: args.val_limit])
        val_set.classes = val_set.dataset.classes
    if args.train_limit:
        g = torch.Generator().manual_seed(0)
        keep = torch.randperm(len(train_set), generator=g)[: args.train_limit].sort().values.tolist()
        classes = train_set.classes
        train_set = Subset(train_set, keep)
        train_set.classes = classes
    val_loader = DataLoader(val_set, batch_size=64, shuffle=False)
    rows = []

    original = load_squeezenet(data_dir)
    t0 = time.perf_counter()
    ref_logits, labels = predict(original, val_loader)
    rows.append(("original (MaxPool)", score(ref_logits, labels, ref_logits, lmap), 0.0, time.perf_counter() - t0))
    logger.info("original: %s", rows[-1])

    student = swap(original, learn_beta=True)
    t0 = time.perf_counter()
    logits, _ = predict(student, val_loader)
    rows.append(("SoftPool beta=1, before training", score(logits, labels, ref_logits, lmap), 0.0,
                 time.perf_counter() - t0))
    logger.info("swapped: %s", rows[-1])

    t0 = time.perf_counter()
    cal_loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True, generator=torch.Generator().manual_seed(0))
    result = calibrate(student, original, cal_loader, num_batches=args.calibrate)
    cal_time = time.perf_counter() - t0
    logger.info("%s", result.summary())
    t0 = time.perf_counter()
    logits, _ = predict(student, val_loader)
    rows.append((f"after --calibrate {args.calibrate} (betas " + ", ".join(f"{v:.3g}" for v in result.betas.values()) + ")",
                 score(logits, labels, ref_logits, lmap), cal_time, time.perf_counter() - t0))
    logger.info("calibrated: %s", rows[-1])

    config = FinetuneConfig(epochs=1, batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr,
                            beta_lr=args.beta_lr, alpha=args.alpha, temperature=args.temperature,
                            weight_decay=1e-4, warmup_steps=3, data_config=DATA_CONFIG, log_every=5)
    import tempfile

    run_dir = args.run_dir or Path(tempfile.mkdtemp(prefix="poolswap-bench-")) / "run"
    t0 = time.perf_counter()
    finetune(student, teacher=original, train_data=train_set, config=config, run_dir=run_dir, overwrite=True)
    train_time = time.perf_counter() - t0
    t0 = time.perf_counter()
    logits, _ = predict(student, val_loader)
    betas = ", ".join(f"{float(m.beta):.3g}" for m in student.modules() if hasattr(m, "log_beta") and m.log_beta is not None)
    rows.append((f"after 1 epoch of distillation on train ({len(train_set)} images; betas {betas})",
                 score(logits, labels, ref_logits, lmap), train_time, time.perf_counter() - t0))
    logger.info("fine-tuned: %s", rows[-1])

    threads = torch.get_num_threads()
    lines = [
        f"SqueezeNet 1.0 (ImageNet weights) on Imagenette val ({len(val_set)} images, 224x224 as they are), "
        f"CPU, {threads} threads, torch {torch.__version__}.",
        "",
        "| model | top-1 (1000-way) | top-1 (10 classes) | agreement with original | time: stage | time: val eval |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, s, stage_time, eval_time in rows:
        lines.append(f"| {name} | {s['top1']:.4f} | {s['top1_10']:.4f} | {s['agreement']:.4f} | "
                     f"{stage_time:.1f} s | {eval_time:.1f} s |")
    lines.append("")
    lines.append(f"Fine-tune: {args.optimizer}, lr {args.lr:g}, beta lr {args.beta_lr:g}, alpha {args.alpha:g}, "
                 f"T {args.temperature:g}, batch {args.batch_size}, learnt scalar beta per site, 1 epoch on "
                 f"{len(train_set)} train images; calibration on {result.samples} train images "
                 f"(agreement there {result.agreement_before:.3f} -> {result.agreement_after:.3f}).")
    table = "\n".join(lines)
    print(table)
    if args.output:
        args.output.write_text(table + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
