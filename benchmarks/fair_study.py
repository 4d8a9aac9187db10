#!/usr/bin/env python3
"""A fair study of what a SoftPool conversion gains: every fine-tuned row against the original fine-tuned alike.

Two real settings, one per run (``--setting``):

* ``squeezenet``: torchvision's ``squeezenet1_0`` with its ImageNet weights (Caffe-scale
  activations: a beta=1 SoftPool is already close to max pooling there), Imagenette
  images at 224x224 as they are, ImageNet mean/std; three MaxPool sites.
* ``small-cnn``: the demo's network (``poolswap.demo.model:digits_cnn``, conv-BatchNorm-ReLU
  blocks pooled by MaxPool, AvgPool, MaxPool: activations of order 1, so beta=1 is far
  from max pooling), trained here from scratch on the Imagenette train images at low
  resolution; all its local pools are swapped (``poolswap.convert``'s default).

Rows (``--rows``; the original is always measured): the original; the original fine-tuned
with the setting's recipe (the *fair baseline* of every fine-tuned row); SoftPool at beta=1
untrained; calibrated (``poolswap.calibration``) untrained; and, fine-tuned with the same
recipe: beta=1 fixed, calibrated fixed, beta=1 with a learnt scalar / per-channel beta, and
calibrated with a learnt scalar beta. Fine-tuned rows run once per seed (``--seeds``): the
seed sets the data order and dropout. Train images are the Imagenette ``train/`` folder
(or a class-balanced subset, ``--train-limit``), evaluation a fixed class-balanced subset of
``val/`` (``--val-limit``; disjoint from train), decoded once and held in memory.

Writes ``OUT/fair_study_<setting>.json`` (every measurement, each image's prediction) and
``OUT/fair_study_<setting>.md`` (the table) atomically after every finished unit; a rerun with
the same settings skips the units already in the JSON::

    python benchmarks/fair_study.py --setting squeezenet --out results/ [--seeds 0 1 2] [--val-limit 500]
    python benchmarks/fair_study.py --setting small-cnn --out results/
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import logging
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _imagenette import DATA_CONFIG, default_data_dir, load_squeezenet  # noqa: E402
from poolswap._atomic import atomic_path, atomic_write_text  # noqa: E402
from poolswap.errors import PoolswapError  # noqa: E402
# the split and the verdict rule live in poolswap.study (the `poolswap study` command); reused here
from poolswap.study import class_balanced_indices, spread  # noqa: E402,F401
from poolswap.study import verdict as compare  # noqa: E402

logger = logging.getLogger("fair_study")

SETTINGS = ("squeezenet", "small-cnn")



@dataclass(frozen=True)
class Row:
    """One row of the study: which model, how its betas start, whether they are learnt, whether it is fine-tuned."""

    name: str
    label: str
    softpool: bool
    calibrated: bool = False
    learn_beta: Optional[str] = None  # None (fixed), "scalar" or "channel"
    finetuned: bool = False


ROWS = (
    Row("original", "original", softpool=False),
    Row("original+ft", "original, fine-tuned (fair baseline)", softpool=False, finetuned=True),
    Row("b1", "SoftPool β=1, untrained", softpool=True),
    Row("calibrated", "SoftPool calibrated, untrained", softpool=True, calibrated=True),
    Row("b1+ft", "SoftPool β=1 fixed, fine-tuned", softpool=True, finetuned=True),
    Row("calibrated+ft", "SoftPool calibrated β fixed, fine-tuned", softpool=True, calibrated=True, finetuned=True),
    Row("b1+scalar+ft", "SoftPool β=1, learnt scalar β, fine-tuned", softpool=True, learn_beta="scalar",
        finetuned=True),
    Row("b1+channel+ft", "SoftPool β=1, learnt per-channel β, fine-tuned", softpool=True, learn_beta="channel",
        finetuned=True),
    Row("calibrated+scalar+ft", "SoftPool calibrated, learnt scalar β, fine-tuned", softpool=True, calibrated=True,
        learn_beta="scalar", finetuned=True),
)
ROWS_BY_NAME = {row.name: row for row in ROWS}
BASELINE = "original+ft"

# Each setting's recipe; command-line options override them.
DEFAULTS = {
    "squeezenet": dict(size=224, train_limit=None, val_limit=500, epochs=1, batch_size=32, lr=1e-5, beta_lr=1e-2,
                       alpha=1.0, temperature=2.0, weight_decay=1e-4, warmup_steps=3, calibrate=1),
    "small-cnn": dict(size=64, train_limit=None, val_limit=None, epochs=2, batch_size=64, lr=1e-3, beta_lr=1e-2,
                      alpha=0.5, temperature=2.0, weight_decay=1e-4, warmup_steps=0, calibrate=4,
                      width=16, pretrain_epochs=24, pretrain_lr=3e-3),
}


# --------------------------------------------------------------------------- data


class CachedImages(Dataset):
    """Preprocessed images held in memory, with their folder labels and class names (for the label map)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, classes: Sequence[str], files: Sequence[str]):
        self.images, self.labels, self.classes, self.files = images, labels, list(classes), list(files)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        return self.images[index], int(self.labels[index])


def load_split(folder: Path, limit: Optional[int], size: int) -> CachedImages:
    """Decode a class-balanced subset of an ImageFolder with the 224x224 ImageNet preprocessing, resized to ``size``."""
    from poolswap.data.datasets import build_transform, image_dataset, resolve_data_config

    dataset = image_dataset(folder, build_transform(resolve_data_config(overrides=DATA_CONFIG)))
    indices = class_balanced_indices(dataset.targets, limit)
    images = torch.empty(len(indices), 3, size, size)
    start = time.perf_counter()
    for k, i in enumerate(indices):
        image = dataset[i][0]
        if size != image.shape[-1]:  # bilinear resizing is linear: resizing the normalised image is the same
            image = F.interpolate(image[None], size=(size, size), mode="bilinear", antialias=True,
                                  align_corners=False)[0]
        images[k] = image
    logger.info("decoded %d images of %s in %.1f s", len(indices), folder, time.perf_counter() - start)
    labels = torch.tensor([dataset.targets[i] for i in indices])
    files = [os.path.relpath(dataset.samples[i][0], folder) for i in indices]
    return CachedImages(images, labels, dataset.classes, files)


# --------------------------------------------------------------------------- models


def _augment(images: torch.Tensor, generator: torch.Generator, pad: int) -> torch.Tensor:
    """Random horizontal flips and random crops from a reflect-padded copy (per image)."""
    n, _, h, w = images.shape
    flip = torch.rand(n, generator=generator) < 0.5
    images = torch.where(flip[:, None, None, None], images.flip(-1), images)
    padded = F.pad(images, (pad, pad, pad, pad), mode="reflect")
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    return torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])


def train_small_cnn(train: CachedImages, *, width: int, epochs: int, lr: float, batch_size: int,
                    seed: int = 0) -> nn.Module:
    """The demo's network trained from scratch (Adam, cosine, flips and crops): the small-cnn setting's original."""
    from poolswap.demo.model import digits_cnn

    torch.manual_seed(seed)
    model = digits_cnn(num_classes=len(train.classes), in_chans=3, width=width)
    generator = torch.Generator().manual_seed(seed)
    steps = epochs * math.ceil(len(train) / batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=5e-4)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.15)
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(train), generator=generator)
        total, correct = 0.0, 0
        for start in range(0, len(train), batch_size):
            idx = order[start:start + batch_size]
            images = _augment(train.images[idx], generator, pad=max(1, train.images.shape[-1] // 16))
            labels = train.labels[idx]
            logits = model(images)
            loss = F.cross_entropy(logits, labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(1) == labels).sum())
        if (epoch + 1) % 5 == 0 or epoch + 1 == epochs:
            logger.info("train small-cnn: epoch %d/%d loss %.3f train top-1 %.3f", epoch + 1, epochs,
                        total / len(train), correct / len(train))
    return model.eval()


def convert(original: nn.Module, row: Row, setting: str, example: torch.Tensor) -> nn.Module:
    """A converted copy of ``original`` for ``row`` (β=1; learnt β as the row says)."""
    from poolswap.surgery import convert as poolswap_convert

    kinds = ("max",) if setting == "squeezenet" else None  # SqueezeNet has max pools only; small-cnn: max and avg
    return poolswap_convert(copy.deepcopy(original), kinds=kinds, beta=1.0, learn_beta=row.learn_beta or False,
                            example_input=example)


def site_betas(model: nn.Module) -> list[float]:
    """Each SoftPool site's temperature (the geometric mean over channels where it is per channel)."""
    from poolswap.ops import softpool_modules

    betas = []
    for module in softpool_modules(model).values():
        beta = module.beta
        betas.append(float(beta.log().mean().exp()) if isinstance(beta, torch.Tensor) else float(beta))
    return betas


def copy_betas(source: list[float], model: nn.Module) -> None:
    from poolswap.ops import softpool_modules
    from poolswap.calibration import set_beta

    for beta, module in zip(source, softpool_modules(model).values()):
        set_beta(module, beta)


# --------------------------------------------------------------------------- measuring


@torch.no_grad()
def predict(model: nn.Module, data: CachedImages, batch_size: int = 100) -> torch.Tensor:
    model.eval()
    return torch.cat([model(data.images[i:i + batch_size]) for i in range(0, len(data), batch_size)])


def label_map_for(data: CachedImages, num_outputs: int) -> torch.Tensor:
    from poolswap.data.datasets import label_map

    mapped = label_map(data.classes, num_outputs)
    return torch.tensor(mapped if mapped is not None else list(range(num_outputs)))


def score(logits: torch.Tensor, data: CachedImages, lmap: torch.Tensor, reference: torch.Tensor) -> dict:
    """Top-1 over all outputs and over the data's classes, agreement with ``reference`` (predicted indices)."""
    prediction = logits.argmax(1)
    targets = lmap[data.labels]
    return {
        "top1_all": float((prediction == targets).float().mean()),
        "top1_classes": float((logits[:, lmap].argmax(1) == data.labels).float().mean()),
        "agreement": float((prediction == reference).float().mean()),
        "predictions": prediction.tolist(),
    }


def finetune_copy(student: nn.Module, original: nn.Module, train: CachedImages, args, seed: int) -> nn.Module:
    """Fine-tune a copy of ``student`` against a copy of ``original``: the caller's models stay as they were."""
    from poolswap.train import FinetuneConfig, finetune

    config = FinetuneConfig(epochs=args.epochs, batch_size=args.batch_size, optimizer="adamw", lr=args.lr,
                            beta_lr=args.beta_lr, alpha=args.alpha, temperature=args.temperature,
                            weight_decay=args.weight_decay, warmup_steps=args.warmup_steps, seed=seed,
                            device="cpu", log_every=10)
    result = finetune(copy.deepcopy(student), teacher=copy.deepcopy(original), train_data=train, config=config,
                      progress=False)
    return result.model.eval()


# --------------------------------------------------------------------------- summary


def summarise(units: dict, rows: Sequence[Row]) -> list[dict]:
    """One summary per row: each metric's mean/std/min/max over seeds, and the comparison with the fair baseline."""
    summaries = []
    baseline_units = {k.split("/")[1]: u for k, u in units.items() if k.startswith(BASELINE + "/")}
    base_stats = None
    for row in rows:
        found = {key: unit for key, unit in units.items() if key.split("/")[0] == row.name}
        if not found:
            continue
        entry = {"row": row.name, "label": row.label, "finetuned": row.finetuned, "seeds": len(found)}
        for metric in ("top1_all", "top1_classes", "agreement"):
            entry[metric] = spread([u[metric] for u in found.values()])
        pairs = [(u, baseline_units[key.split("/")[1]]) for key, u in found.items()
                 if row.finetuned and key.split("/")[1] in baseline_units]
        if pairs:
            entry["agreement_with_baseline"] = spread(
                [statistics.fmean(float(a == b) for a, b in zip(u["predictions"], v["predictions"])) for u, v in pairs])
        entry["betas"] = [statistics.fmean(b) for b in zip(*[u["betas"] for u in found.values()])] \
            if all(u.get("betas") for u in found.values()) else []
        entry["seconds"] = statistics.fmean(u["seconds"] for u in found.values())
        if row.name == BASELINE:
            base_stats = entry
        summaries.append(entry)
    for entry in summaries:
        if entry["finetuned"] and base_stats is not None and entry["row"] != BASELINE:
            entry["vs_baseline"] = {m: {"difference": entry[m]["mean"] - base_stats[m]["mean"],
                                        "verdict": compare(entry[m], base_stats[m])}
                                    for m in ("top1_all", "top1_classes")}
    return summaries


def _cell(stats: dict, finetuned: bool) -> str:
    if not finetuned or stats["n"] == 1:
        return f"{stats['mean']:.3f}"
    return f"{stats['mean']:.3f} ± {stats['std']:.3f} ({stats['min']:.3f}–{stats['max']:.3f})"


def markdown(summaries: list[dict], meta: dict) -> str:
    both = meta["num_outputs"] != meta["num_classes"]
    head = ["model", "seeds", f"top-1 ({meta['num_classes']} classes)"]
    if both:
        head.append(f"top-1 ({meta['num_outputs']}-way)")
    head += ["agreement with original", "agreement with fair baseline", "Δ top-1 vs fair baseline", "betas",
             "time per run"]
    lines = [meta["title"], "", "| " + " | ".join(head) + " |",
             "| --- | ---: | " + " | ".join(["---:"] * (len(head) - 3)) + " | --- |"]
    for s in summaries:
        ft = s["finetuned"]
        cells = [s["label"], str(s["seeds"]), _cell(s["top1_classes"], ft)]
        if both:
            cells.append(_cell(s["top1_all"], ft))
        cells.append(_cell(s["agreement"], ft))
        cells.append(_cell(s["agreement_with_baseline"], ft) if "agreement_with_baseline" in s else "")
        if "vs_baseline" in s:
            parts = [f"{s['vs_baseline']['top1_classes']['difference']:+.3f} "
                     f"({s['vs_baseline']['top1_classes']['verdict']})"]
            if both:
                parts.append(f"{s['vs_baseline']['top1_all']['difference']:+.3f} "
                             f"({s['vs_baseline']['top1_all']['verdict']}, {meta['num_outputs']}-way)")
            cells.append("; ".join(parts))
        else:
            cells.append("")
        cells.append(", ".join(f"{b:.3g}" for b in s["betas"]))
        cells.append(f"{s['seconds']:.0f} s")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", *meta["notes"]]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- main


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--setting", choices=SETTINGS, default="squeezenet")
    parser.add_argument("--data", type=Path, default=default_data_dir(), help="the shared data folder")
    parser.add_argument("--out", type=Path, required=True, help="folder for fair_study_<setting>.json/.md")
    parser.add_argument("--rows", nargs="+", choices=[r.name for r in ROWS], default=[r.name for r in ROWS])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="one fine-tune per seed and row")
    parser.add_argument("--val-limit", type=int, help="class-balanced subset of val/ (default: setting's; 0: all)")
    parser.add_argument("--train-limit", type=int, help="class-balanced subset of train/ (default: all 1,000)")
    parser.add_argument("--size", type=int, help="image size (small-cnn: the 224x224 images resized)")
    parser.add_argument("--epochs", type=int, help="fine-tune epochs")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--beta-lr", type=float)
    parser.add_argument("--alpha", type=float, help="distillation weight (1: no labels)")
    parser.add_argument("--temperature", type=float)
    parser.add_argument("--weight-decay", type=float)
    parser.add_argument("--warmup-steps", type=int)
    parser.add_argument("--calibrate", type=int, help="calibration batches (of --batch-size train images)")
    parser.add_argument("--width", type=int, help="small-cnn: channels of the first block")
    parser.add_argument("--pretrain-epochs", type=int, help="small-cnn: epochs of training the original")
    parser.add_argument("--pretrain-lr", type=float, help="small-cnn: peak lr of training the original")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--merge", nargs="+", type=Path, default=[],
                        help="JSON files of runs with the same settings (e.g. other rows run elsewhere): add their units")
    parser.add_argument("--report-only", action="store_true", help="write the table from the JSON, measure nothing")
    args = parser.parse_args(argv)
    for key, value in DEFAULTS[args.setting].items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    if args.val_limit == 0:
        args.val_limit = None
    if "original" not in args.rows:
        args.rows = ["original", *args.rows]
    if any(ROWS_BY_NAME[r].finetuned for r in args.rows) and BASELINE not in args.rows:
        args.rows.append(BASELINE)  # every fine-tuned row is read against it
    return args


def _study_config(args) -> dict:
    """What a unit's result depends on: a rerun reuses the units of a JSON written with the same values."""
    keys = ("setting", "val_limit", "train_limit", "size", "epochs", "batch_size", "lr", "beta_lr", "alpha",
            "temperature", "weight_decay", "warmup_steps", "calibrate")
    config = {k: getattr(args, k) for k in keys}
    if args.setting == "small-cnn":
        config.update(width=args.width, pretrain_epochs=args.pretrain_epochs, pretrain_lr=args.pretrain_lr)
    return config


def run(args) -> dict:
    torch.set_num_threads(args.threads)
    out = args.out
    json_path, md_path = out / f"fair_study_{args.setting}.json", out / f"fair_study_{args.setting}.md"
    config = _study_config(args)
    units: dict = {}
    if json_path.is_file():
        previous = json.loads(json_path.read_text(encoding="utf-8"))
        if previous.get("config") == config:
            units = previous.get("units", {})
            logger.info("resuming %s: %d unit(s) already measured", json_path, len(units))
        else:
            logger.info("%s was written with other settings: starting afresh", json_path)
    for path in args.merge:
        other = json.loads(path.read_text(encoding="utf-8"))
        if other.get("config") != config:
            raise PoolswapError(f"{path} was written with other settings than this run; merge runs of the same settings")
        units = {**other["units"], **units}
    started = time.perf_counter()
    if args.report_only:
        if not json_path.is_file():
            raise PoolswapError(f"--report-only needs {json_path}; run the study first")
        meta = json.loads(json_path.read_text(encoding="utf-8"))["meta"]
        rows = [r for r in ROWS if any(k.split("/")[0] == r.name for k in units)]
        meta["title"], meta["notes"] = _title_and_notes(args, meta, meta.get("calibration"), units)
        summaries = summarise(units, rows)
        atomic_write_text(json_path, json.dumps({"config": config, "meta": meta, "summary": summaries,
                                                 "units": units}, separators=(",", ":")) + "\n")
        atomic_write_text(md_path, markdown(summaries, meta))
        return json.loads(json_path.read_text(encoding="utf-8"))

    root = args.data / "imagenette"
    if not (root / "train").is_dir() or not (root / "val").is_dir():
        raise PoolswapError(f"no Imagenette train/ and val/ under {root}; pass --data (the shared data folder)")
    train = load_split(root / "train", args.train_limit, args.size)
    val = load_split(root / "val", args.val_limit, args.size)
    overlap = set(train.files) & set(val.files)
    if overlap:
        raise PoolswapError(f"train and val share {len(overlap)} file(s), e.g. {sorted(overlap)[0]}")

    if args.setting == "squeezenet":
        if not (args.data / "squeezenet1_0_imagenet.pth").is_file():
            raise PoolswapError(f"no squeezenet1_0_imagenet.pth in {args.data}; pass --data (the shared data folder)")
        original = load_squeezenet(args.data)
    else:
        weights = out / "fair_study_small-cnn_original.pth"
        from poolswap.demo.model import digits_cnn

        if units and weights.is_file():
            original = digits_cnn(num_classes=len(train.classes), in_chans=3, width=args.width)
            original.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
            original.eval()
        else:
            units = {}
            t0 = time.perf_counter()
            original = train_small_cnn(train, width=args.width, epochs=args.pretrain_epochs, lr=args.pretrain_lr,
                                       batch_size=args.batch_size)
            logger.info("trained the small-cnn original in %.0f s", time.perf_counter() - t0)
            with atomic_path(weights) as tmp:
                torch.save(original.state_dict(), tmp)
    for p in original.parameters():  # the models below are copies; this one must come out untouched
        p.requires_grad_(True)
    example = val.images[:2]

    reference = predict(original, val)
    lmap = label_map_for(val, reference.shape[1])
    ref_pred = reference.argmax(1)
    rows = [r for r in ROWS if r.name in args.rows]  # the table's order
    measure_order = [ROWS_BY_NAME[name] for name in dict.fromkeys(args.rows)]  # the command line's order
    meta = {"setting": args.setting, "config": config, "threads": args.threads, "torch": torch.__version__,
            "date": datetime.date.today().isoformat(), "train_images": len(train), "val_images": len(val),
            "val_files": val.files, "num_classes": len(val.classes), "num_outputs": int(reference.shape[1])}

    def save() -> None:
        meta["wall_seconds_this_run"] = time.perf_counter() - started
        summaries = summarise(units, rows)
        meta["title"], meta["notes"] = _title_and_notes(args, meta, calibration, units)
        atomic_write_text(json_path, json.dumps({"config": config, "meta": meta, "summary": summaries,
                                                 "units": units}, separators=(",", ":")) + "\n")
        atomic_write_text(md_path, markdown(summaries, meta))

    def measure(key: str, model: nn.Module, seconds: float) -> None:
        t0 = time.perf_counter()
        result = score(predict(model, val), val, lmap, ref_pred)
        result["betas"] = site_betas(model)
        result["seconds"] = seconds + time.perf_counter() - t0
        units[key] = result
        logger.info("%s: top-1 %.4f (%d classes), %.4f (all), agreement %.4f, betas %s, %.0f s", key,
                    result["top1_classes"], len(val.classes), result["top1_all"], result["agreement"],
                    ", ".join(f"{b:.3g}" for b in result["betas"]), result["seconds"])
        save()

    # calibration: one deterministic choice of betas (fixed order of the train images), shared by the rows using it
    calibration = None
    if any(r.calibrated for r in rows):
        from poolswap.train import calibrate

        t0 = time.perf_counter()
        calibrated = convert(original, ROWS_BY_NAME["calibrated"], args.setting, example)
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(0)).tolist()
        loader = DataLoader(torch.utils.data.Subset(train, order), batch_size=args.batch_size, shuffle=False)
        result = calibrate(calibrated, copy.deepcopy(original), loader, num_batches=args.calibrate)
        logger.info("%s", result.summary())
        calibration = {"betas": list(result.betas.values()), "samples": result.samples,
                       "agreement_before": result.agreement_before, "agreement_after": result.agreement_after,
                       "seconds": time.perf_counter() - t0}
        meta["calibration"] = calibration

    for row in measure_order:
        for seed in (args.seeds if row.finetuned else [None]):
            key = f"{row.name}/{'-' if seed is None else seed}"
            if key in units:
                continue
            t0 = time.perf_counter()
            model = original if not row.softpool else convert(original, row, args.setting, example)
            if row.calibrated:
                copy_betas(calibration["betas"], model)
            if row.finetuned:
                logger.info("fine-tuning %s", key)
                model = finetune_copy(model, original, train, args, seed)
            measure(key, model, time.perf_counter() - t0)
    if not units:
        save()
    untouched = all(p.requires_grad for p in original.parameters())
    if not untouched:
        raise PoolswapError("a step changed the original's requires_grad: the rows are not independent")
    logger.info("wrote %s and %s (%.0f s)", json_path, md_path, time.perf_counter() - started)
    return json.loads(json_path.read_text(encoding="utf-8"))


def _title_and_notes(args, meta: dict, calibration: Optional[dict], units: dict) -> tuple[str, list[str]]:
    n = meta["val_images"]
    if args.setting == "squeezenet":
        title = (f"SqueezeNet 1.0 (ImageNet weights), Imagenette: fine-tuned on {meta['train_images']} train images, "
                 f"evaluated on {n} val images (class-balanced, disjoint from train), 224×224 as they are.")
    else:
        title = (f"The demo's network (width {args.width}, BatchNorm) trained here from scratch for "
                 f"{args.pretrain_epochs} epochs on {meta['train_images']} Imagenette train images at "
                 f"{args.size}×{args.size}, evaluated on {n} val images (class-balanced, disjoint from train).")
    seeds = sorted({k.split("/")[1] for k in units if k.split("/")[1] != "-"}, key=int)
    recipe = (f"Fine-tune (every fine-tuned row, the fair baseline included): AdamW, lr {args.lr:g}, β lr "
              f"{args.beta_lr:g}, weight decay {args.weight_decay:g}, warmup {args.warmup_steps} steps then cosine, "
              f"alpha {args.alpha:g}, T {args.temperature:g}, batch {args.batch_size}, {args.epochs} epoch(s), "
              f"distilled from the original; seeds {', '.join(seeds)} (data order, dropout).")
    notes = [f"- {recipe}"]
    if calibration is not None:
        notes.append(f"- Calibration: {args.calibrate} batch(es), {calibration['samples']} train images; betas "
                     + ", ".join(f"{b:.3g}" for b in calibration["betas"])
                     + f" (agreement there {calibration['agreement_before']:.3f} → "
                       f"{calibration['agreement_after']:.3f}).")
    p = 0.5
    notes.append(f"- Fine-tuned rows: mean ± std over seeds (min–max). \"higher\"/\"lower\": the seeds' ranges of "
                 f"the row and of the fair baseline do not overlap; else \"within spread\". Sampling error of one "
                 f"top-1 on {n} images: up to ±{math.sqrt(p * (1 - p) / n):.3f} (one standard error), the same "
                 "images for every row.")
    notes.append(f"- CPU, {meta['threads']} threads, torch {torch.__version__}, {meta['date']}; this run's wall time "
                 f"{meta.get('wall_seconds_this_run', 0) / 60:.1f} min (`time per run`: building, fine-tuning and "
                 "evaluating one model).")
    return title, notes


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args = parse_args(argv)
    try:
        result = run(args)
    except PoolswapError as exc:
        logger.error("%s", exc)
        return 2
    print((args.out / f"fair_study_{args.setting}.md").read_text(encoding="utf-8"))
    return 0 if result else 1


if __name__ == "__main__":
    sys.exit(main())
