"""Run a study: one unit per (model, seed), each fine-tuned alike and measured on held-out images, resumably."""

from __future__ import annotations

import copy
import json
import logging
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .._atomic import atomic_write_text
from ..errors import PoolswapError
from .config import StudyConfig
from .split import Split, pool_samples, split_samples
from .verdict import spread, verdict

__all__ = ["METRICS", "StudyResult", "run_study"]

logger = logging.getLogger("poolswap.study")

#: each unit's measurements: (key, label, better when higher)
METRICS = (
    ("top1", "top-1", True),
    ("top1_classes", "top-1 (data's classes)", True),
    ("agreement", "agreement with the original", True),
    ("consistency", "shift consistency", True),
    ("latency_ms", "latency (ms, batch 1)", False),
)
ORIGINAL = "original"
LABELS = {"original": "original, fine-tuned alike (baseline)", "b1": "SoftPool β=1", "calibrated": "SoftPool calibrated β",
          "scalar": "SoftPool learnt scalar β", "channel": "SoftPool learnt per-channel β"}
JSON_NAME, MD_NAME, PLOT_NAME = "study.json", "study.md", "study.png"


class FileImages(Dataset):
    """(image, label) of listed files under ``root``; ``classes`` empty (labels -1) when ``labelled`` is False.

    With ``cache`` (a dict, which datasets of the same files may share), each file is decoded once and its
    decoded image held; the transform still runs every time, so random augmentation stays random.
    """

    def __init__(self, root: Path, samples: Sequence[tuple[str, int]], transform, *, classes: Sequence[str],
                 channels: int, labelled: bool, cache: Optional[dict] = None) -> None:
        self.root, self.samples, self.transform, self.channels = Path(root), list(samples), transform, channels
        self.labelled = labelled and bool(classes)
        self.classes = list(classes) if self.labelled else []
        self.cache = cache

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        from ..image_files import decode_image

        path, label = self.samples[index]
        if self.cache is None:
            image = decode_image(self.root / path, self.channels)
        else:
            image = self.cache.get(path)
            if image is None:
                image = self.cache[path] = decode_image(self.root / path, self.channels)
        return self.transform(image), (label if self.labelled else -1)


@dataclass
class StudyResult:
    """Every unit's measurements, the per-model summary with verdicts, and where they were written."""

    out: Path
    units: dict = field(default_factory=dict)
    summary: list = field(default_factory=list)
    meta: dict = field(default_factory=dict)


def _load_original(model: Union[str, os.PathLike, nn.Module], weights) -> nn.Module:
    if isinstance(model, nn.Module):
        return copy.deepcopy(model).eval()
    from ..model import load_model

    return load_model(model, weights).eval()


def _student(original: nn.Module, arm: str, example: torch.Tensor) -> nn.Module:
    if arm == ORIGINAL:
        return copy.deepcopy(original)
    from ..surgery import convert

    learn = arm if arm in ("scalar", "channel") else False
    return convert(copy.deepcopy(original), beta=1.0, learn_beta=learn, example_input=example)


def _has_learnt_weights(model: Union[str, os.PathLike, nn.Module], weights) -> bool:
    """A module or a model file has; a spec without weights has not (it is random: agreement with it means
    nothing)."""
    return isinstance(model, nn.Module) or weights is not None or Path(model).is_file()


@torch.no_grad()
def _logits(model: nn.Module, data: Dataset, batch_size: int, device: torch.device) -> torch.Tensor:
    model.eval()
    out = [model(images.to(device)).float().cpu()
           for images, _ in DataLoader(data, batch_size=batch_size, shuffle=False)]
    return torch.cat(out)


def _latency_ms(model: nn.Module, shape: tuple, device: torch.device, seconds: float) -> float:
    from ..bench._timing import median_seconds

    x = torch.randn(1, *shape, device=device)
    model.eval()

    def forward():
        with torch.inference_mode():
            return model(x)

    return 1000.0 * median_seconds(forward, seconds, device.type, torch.get_num_threads())


def _measure(model: nn.Module, original_top1: Optional[torch.Tensor], eval_set: FileImages, shifted: Dataset, *,
             label_map: Optional[torch.Tensor], config: StudyConfig, crop: tuple, max_shift: int, seed: int,
             device: torch.device, input_shape: tuple) -> dict:
    from ..train.consistency import shift_consistency

    logits = _logits(model, eval_set, config.batch_size, device)
    prediction = logits.argmax(1)
    result: dict = {"predictions": prediction.tolist()}
    if original_top1 is not None:
        result["agreement"] = float((prediction == original_top1).float().mean())
    labels = torch.tensor([s[1] for s in eval_set.samples])
    if eval_set.classes and label_map is not None:
        result["top1"] = float((prediction == label_map[labels]).float().mean())
        if len(label_map) != logits.shape[1]:  # the data's classes are a subset of the head's outputs
            result["top1_classes"] = float((label_map[logits[:, label_map].argmax(1)] == label_map[labels])
                                           .float().mean())
    elif eval_set.classes:
        result["top1"] = float((prediction == labels).float().mean())
    consistency = shift_consistency(model, shifted, crop=crop, passes=config.passes, max_shift=max_shift,
                                    batch_size=config.batch_size, device=device, seed=seed)
    result.update(consistency=consistency.consistency, consistency_se=consistency.stderr)
    result["latency_ms"] = _latency_ms(model, input_shape, device, config.latency_time)
    return result


def summarise(units: dict, arms: Sequence[str]) -> list[dict]:
    """Per model: each metric's spread over seeds, its verdict against the original, and agreement with the
    original fine-tuned with the same seed."""
    by_arm = {arm: {k.split("/")[1]: u for k, u in units.items() if k.split("/")[0] == arm} for arm in arms}
    baseline = by_arm.get(ORIGINAL, {})
    summaries = []
    for arm in arms:
        found = by_arm[arm]
        if not found:
            continue
        entry = {"model": arm, "label": LABELS[arm], "seeds": sorted(int(s) for s in found)}
        for key, _, _ in METRICS:
            values = [u[key] for u in found.values() if u.get(key) is not None]
            if values:
                entry[key] = spread(values)
        entry["consistency_se"] = statistics.fmean(u["consistency_se"] for u in found.values())
        if arm != ORIGINAL:
            pairs = [(u, baseline[s]) for s, u in found.items() if s in baseline]
            if pairs:
                entry["agreement_with_baseline"] = spread(
                    [statistics.fmean(float(a == b) for a, b in zip(u["predictions"], v["predictions"]))
                     for u, v in pairs])
        summaries.append(entry)
    base = next((s for s in summaries if s["model"] == ORIGINAL), None)
    for entry in summaries:
        if entry["model"] == ORIGINAL or base is None:
            continue
        entry["verdicts"] = {key: {"difference": entry[key]["mean"] - base[key]["mean"],
                                   "verdict": verdict(entry[key], base[key])}
                             for key, _, _ in METRICS if key in entry and key in base}
    return summaries


def _cell(stats: dict, digits: int = 3) -> str:
    if stats["n"] == 1:
        return f"{stats['mean']:.{digits}f}"
    return f"{stats['mean']:.{digits}f} ± {stats['std']:.{digits}f}"


def markdown(summary: list[dict], meta: dict) -> str:
    """The study's table: one row per model, each metric as mean ± std over seeds and its verdict."""
    keys = [(k, label) for k, label, _ in METRICS if any(k in s for s in summary)]
    head = ["model", "seeds", *[label for _, label in keys], "agreement with baseline (same seed)"]
    lines = [f"Study of {meta['model']} on {meta['data']}: {meta['recipe']} recipe, {meta['train_images']} fine-tune "
             f"images, {meta['eval_images']} held-out evaluation images ({meta['split_rule']})", "",
             "| " + " | ".join(head) + " |", "| --- | ---: | " + " | ".join(["---:"] * (len(head) - 2)) + " |"]
    for s in summary:
        cells = [s["label"], str(len(s["seeds"]))]
        for key, _ in keys:
            if key not in s:
                cells.append("")
                continue
            digits = 2 if key == "latency_ms" else 3
            text = _cell(s[key], digits)
            if "verdicts" in s and key in s["verdicts"]:
                v = s["verdicts"][key]
                text += f" ({v['difference']:+.{digits}f}, {v['verdict']})"
            cells.append(text)
        cells.append(_cell(s["agreement_with_baseline"]) if "agreement_with_baseline" in s else "")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Mean ± standard deviation over seeds; a verdict says higher or lower only when every seed's value "
              "is beyond every seed of the original fine-tuned alike, else within spread (no verdict from one "
              "seed). Shift consistency: two "
              f"crops offset in [0, {meta['max_shift']}) px, {meta['passes']} pass(es) (mean standard error over "
              f"images: {meta['consistency_se']:.3f}). Latency: one forward at batch 1 on {meta['device']}, "
              f"{meta['threads']} threads, median."]
    return "\n".join(lines) + "\n"


def plot(summary: list[dict], path: Path) -> None:
    """One panel per metric: each model's mean, its seeds as dots."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .._atomic import atomic_path

    keys = [(k, label) for k, label, _ in METRICS if any(k in s for s in summary)]
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 3.4), squeeze=False)
    names = [s["model"] for s in summary]
    for ax, (key, label) in zip(axes[0], keys):
        for i, s in enumerate(summary):
            if key in s:
                ax.bar(i, s[key]["mean"], yerr=s[key]["std"], color="tab:gray" if s["model"] == ORIGINAL else "tab:blue",
                       alpha=0.6, capsize=3)
                ax.plot([i, i], [s[key]["min"], s[key]["max"]], "k.")
        lows = [s[key]["min"] for s in summary if key in s]
        highs = [s[key]["max"] for s in summary if key in s]
        pad = max(1e-3, (max(highs) - min(lows)) * 0.5)
        ax.set_ylim(max(0.0, min(lows) - pad), max(highs) + pad)
        ax.set_xticks(range(len(names)), names, rotation=30)
        ax.set_title(label, fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def _prepare_out(out: Path, state: dict, overwrite: bool) -> dict:
    """The units already measured by a study of the same settings in ``out`` (resume), else none."""
    path = out / JSON_NAME
    if not path.is_file():
        if out.exists() and any(out.iterdir()) and not overwrite:
            raise PoolswapError(f"{out} is not empty and holds no {JSON_NAME}; choose another -o folder or pass "
                                "--overwrite")
        return {}
    try:
        previous = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PoolswapError(f"{path} is not a study's JSON ({exc}); remove it or choose another -o folder") from None
    same = all(previous.get(k) == state[k] for k in ("model", "settings", "split"))
    if not same:
        if overwrite:
            return {}
        raise PoolswapError(f"{out} holds a study of other settings, model or images; rerun it with the same "
                            "flags to continue it, or pass --overwrite, or choose another -o folder")
    return dict(previous.get("units", {}))


def run_study(
    model: Union[str, os.PathLike, nn.Module],
    data: Union[str, os.PathLike],
    out: Union[str, os.PathLike],
    config: Optional[StudyConfig] = None,
    *,
    weights: Optional[Union[str, os.PathLike]] = None,
    overwrite: bool = False,
    trained: Optional[bool] = None,
    on_unit: Optional[Callable[[str, dict], None]] = None,
) -> StudyResult:
    """A fair A/B study of ``model`` (a spec such as ``torchvision:NAME`` with ``weights``, a poolswap model
    file, or a module) against its SoftPool conversions, on the images of ``data``, written to ``out``.

    Agreement with the original is measured only when it is ``trained`` (default: a module or a model file is,
    a spec without ``weights`` is not); a study from scratch passes ``trained=False`` with its random module.
    Resumable: a rerun with the same settings skips the units already in ``out/study.json``.
    ``on_unit(key, unit)`` is called after each unit is saved.
    """
    from ..device import resolve_device
    from ..model import spec_of
    from ..model.head import replace_head
    from ..train import finetune
    from ..train.consistency import default_max_shift
    from ..data.datasets import build_transform, label_map as find_label_map, resolve_data_config

    config = config or StudyConfig()
    out, data = Path(out), Path(data)
    original = _load_original(model, weights)
    spec = spec_of(original)
    model_name = spec.text if spec is not None else (str(model) if not isinstance(model, nn.Module) else
                                                      type(model).__name__)
    data_config = resolve_data_config(original, spec=spec.text if spec else None, overrides=config.data_config)
    channels, height, width = (int(v) for v in data_config["input_size"])
    max_shift = config.max_shift or default_max_shift(height)

    classes, samples = pool_samples(data)
    split: Split = split_samples(classes, samples, eval_fraction=config.eval_fraction, max_eval=config.max_eval,
                                 max_train=config.max_train)
    labelled = config.recipe in ("labels", "head")
    if labelled and not classes:
        raise PoolswapError(f"the {config.recipe} recipe needs class folders; use --recipe distill for unlabelled "
                            "images")
    if config.recipe == "head" and len(classes) < 2:
        raise PoolswapError(f"a new head needs at least 2 classes, the data has {len(classes)}")
    device = resolve_device(config.device)
    original.to(device)
    with torch.no_grad():
        num_outputs = int(original(torch.zeros(1, channels, height, width, device=device)).shape[1])
    label_map = None  # each class's output of the original's head
    if classes:
        try:
            mapped = find_label_map(classes, num_outputs)
            label_map = torch.tensor(mapped if mapped is not None else list(range(num_outputs)))
        except PoolswapError:
            if config.recipe == "labels":
                raise
            logger.warning("the data's classes do not map onto the model's %d outputs: %s", num_outputs,
                           "no agreement with the original" if config.recipe == "head" else "no top-1, agreement only")
    cache: Optional[dict] = {} if config.cache else None
    transform = build_transform(data_config)
    train_transform = build_transform(data_config, train=True, hflip=config.augment != "none",
                                      random_crop=config.augment == "crop")
    train_set = FileImages(data, split.train, train_transform, classes=classes, channels=channels,
                           labelled=labelled, cache=cache)
    eval_set = FileImages(data, split.eval, transform, classes=classes, channels=channels,
                          labelled=label_map is not None or config.recipe == "head", cache=cache)
    # the evaluation images at (H + S) x (W + S), for the shifted crops (as consistency_dataset does for a folder)
    large = {**data_config, "input_size": (channels, height + max_shift, width + max_shift), "crop_pct": 1.0}
    shifted = FileImages(data, split.eval, build_transform(large), classes=classes, channels=channels, labelled=False,
                         cache=cache)

    # as JSON gives it back (tuples are lists), so a rerun compares like with like
    state = json.loads(json.dumps({"model": model_name, "settings": config.settings(), "split": split.as_dict()}))
    units = _prepare_out(out, state, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    arms = [ORIGINAL, *config.variants]
    meta = {"model": model_name, "data": str(data), "recipe": config.recipe, "train_images": len(split.train),
            "eval_images": len(split.eval), "classes": len(classes), "num_outputs": num_outputs,
            "split_rule": f"{config.eval_fraction:g} of each class held out by a hash of its path",
            "max_shift": max_shift, "passes": config.passes, "device": str(device),
            "threads": torch.get_num_threads(), "seeds": list(config.seeds), "variants": list(config.variants)}

    def write() -> list[dict]:
        summary = summarise(units, arms)
        if summary:
            meta["consistency_se"] = statistics.fmean(s["consistency_se"] for s in summary)
        payload = {**state, "meta": meta, "units": units, "summary": summary}
        atomic_write_text(out / JSON_NAME, json.dumps(payload, indent=1) + "\n")
        if summary:
            atomic_write_text(out / MD_NAME, markdown(summary, meta))
        return summary

    # the original's predictions, for agreement: none from a random original; with a new head, the original's
    # choice among the data's classes (its outputs for them), as the new head predicts class indices
    original_top1 = None
    if trained if trained is not None else _has_learnt_weights(model, weights):
        logits = _logits(original, eval_set, config.batch_size, device)
        if config.recipe != "head":
            original_top1 = logits.argmax(1)
        elif label_map is not None:
            original_top1 = logits[:, label_map].argmax(1)
    measure_map = torch.arange(len(classes)) if config.recipe == "head" else label_map
    meta["agreement"] = original_top1 is not None
    example = torch.zeros(1, channels, height, width)
    for arm in arms:
        for seed in config.seeds:
            key = f"{arm}/{seed}"
            if key in units:
                logger.info("study: %s already measured", key)
                continue
            start = time.perf_counter()
            base = original.cpu()
            if config.recipe == "head":  # the same new head, by seed, for the original and every conversion
                base = copy.deepcopy(base)
                replace_head(base, len(classes), num_outputs=num_outputs, seed=seed)
            student = _student(base, arm, example)
            ft = config.finetune_config(seed=seed, calibrate=arm == "calibrated")
            result = finetune(student, teacher=copy.deepcopy(base).to(device), train_data=train_set, config=ft,
                              progress=False)
            original.to(device)
            unit = _measure(result.model, original_top1, eval_set, shifted, label_map=measure_map, config=config,
                            crop=(height, width), max_shift=max_shift, seed=seed, device=device,
                            input_shape=(channels, height, width))
            unit["seconds"] = time.perf_counter() - start
            unit["collapse"] = result.collapse
            # each epoch's training loss and top-1: whether the recipe had converged
            unit["history"] = [{k: row[k] for k in ("epoch", "train_loss", "train_top1", "beta_mean") if k in row}
                               for row in result.history]
            if result.lr_find is not None:
                unit["lr"] = result.lr_find.lr
            units[key] = unit
            write()
            logger.info("study: %s top-1 %s, agreement %s, consistency %.4f, latency %.2f ms (%.0f s)", key,
                        f"{unit['top1']:.4f}" if unit.get("top1") is not None else "-",
                        f"{unit['agreement']:.4f}" if unit.get("agreement") is not None else "-",
                        unit["consistency"], unit["latency_ms"], unit["seconds"])
            if on_unit is not None:
                on_unit(key, unit)
    summary = write()
    try:
        plot(summary, out / PLOT_NAME)
    except ImportError:
        logger.warning("matplotlib is not installed: no %s (pip install matplotlib)", PLOT_NAME)
    return StudyResult(out=out, units=units, summary=summary, meta=meta)
