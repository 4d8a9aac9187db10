"""The fine-tune loop: distil a converted network from its original, resumably, on one or many processes."""

from __future__ import annotations

import logging
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..errors import PoolswapError, first_line
from .calibrate import CalibrationResult, calibrate
from .config import FinetuneConfig
from .data import EpochSampler, SeededTransformDataset, build_transform, dataset_classes, image_dataset
from .data import label_map as find_label_map
from .data import resolve_data_config
from .distill import distillation_loss, original_of
from .distributed import all_reduce_sum, init_distributed
from .evaluate import Metrics, evaluate
from ..ops import fixed_betas, restore_fixed_betas, softpool_modules
from .optim import build_optimizer, build_scheduler, freeze_bn_stats
from .resume import get_rng_state, load_resume_state, save_resume_state, set_rng_state
from .run_dir import RunDir

__all__ = ["FinetuneResult", "finetune", "seed_everything"]

logger = logging.getLogger("poolswap.train")

DataArg = Union[Dataset, str, os.PathLike]


@dataclass
class FinetuneResult:
    """The trained student (unwrapped), one summary row per epoch, and the calibration, if any."""

    model: nn.Module
    history: list[dict] = field(default_factory=list)
    calibration: Optional[CalibrationResult] = None
    run_dir: Optional[Path] = None
    steps: int = 0


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), numpy and Python's ``random``."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _as_dataset(data: DataArg, model: nn.Module, config: FinetuneConfig, spec, *, train: bool) -> Dataset:
    if isinstance(data, Dataset):
        return data
    if isinstance(data, (str, os.PathLike)):
        from ..model import parse_spec, spec_of

        resolved = parse_spec(spec) if spec is not None else spec_of(model)
        data_config = resolve_data_config(model, spec=resolved.text if resolved else None, overrides=config.data_config)
        return image_dataset(data, build_transform(data_config, train=train, hflip=config.hflip),
                             channels=data_config["input_size"][0], skip_bad_images=config.skip_bad_images)
    raise PoolswapError(f"data must be a Dataset or an image folder, got {type(data).__name__}")


def _split_batch(batch) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    if isinstance(batch, (tuple, list)):
        labels = batch[1] if len(batch) > 1 else None
        return batch[0], (torch.as_tensor(labels) if labels is not None else None)
    return batch, None


def _beta_mean(model: nn.Module) -> Optional[float]:
    sites = list(softpool_modules(model).items())
    if not sites:
        return None
    values = [float(m.beta.float().mean()) if isinstance(m.beta, torch.Tensor) else float(m.beta) for _, m in sites]
    return sum(values) / len(values)


class _Progress:
    """A tqdm bar on a terminal; a log line every ``log_every`` steps elsewhere (files, CI)."""

    def __init__(self, *, total: int, initial: int, epoch: int, epochs: int, enabled: bool, log_every: int) -> None:
        self.total, self.step, self.enabled, self.log_every = total, initial, enabled, log_every
        self.desc = f"epoch {epoch + 1}/{epochs}"
        self.start, self.start_step = time.perf_counter(), initial
        self.bar = None
        self._redirect = None
        if enabled and sys.stderr.isatty():
            from tqdm.auto import tqdm
            from tqdm.contrib.logging import logging_redirect_tqdm

            self.bar = tqdm(total=total, initial=initial, desc=self.desc, dynamic_ncols=True, leave=True)
            self._redirect = logging_redirect_tqdm()  # log lines print above the bar, not through it
            self._redirect.__enter__()

    def update(self, **stats: float) -> None:
        self.step += 1
        text = {k: f"{v:.4g}" for k, v in stats.items() if v is not None}
        if self.bar is not None:
            self.bar.set_postfix(text, refresh=False)
            self.bar.update(1)
        elif self.enabled and (self.step % self.log_every == 0 or self.step == self.total):
            elapsed = time.perf_counter() - self.start
            done = self.step - self.start_step
            eta = elapsed / done * (self.total - self.step) if done else float("nan")
            details = " ".join(f"{k} {v}" for k, v in text.items())
            logger.info("%s step %d/%d %s eta %.0fs", self.desc, self.step, self.total, details, eta)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self._redirect.__exit__(None, None, None)


def finetune(
    model: nn.Module,
    *,
    teacher: Optional[nn.Module] = None,
    train_data: DataArg,
    val_data: Optional[DataArg] = None,
    config: Optional[FinetuneConfig] = None,
    run_dir: Optional[Union[str, os.PathLike]] = None,
    resume: bool = False,
    overwrite: bool = False,
    spec=None,
    extra_args: Optional[dict] = None,
    progress: bool = True,
) -> FinetuneResult:
    """Fine-tune the converted ``model`` by distillation from ``teacher`` (its original, frozen).

    ``train_data``/``val_data``: Datasets yielding (image, label) with label -1 for
    unlabelled samples, or image folders (preprocessed with the model's data
    config). With ``run_dir``, writes ``args.yaml``, ``summary.csv``, ``last.safetensors``,
    ``best.safetensors`` and ``resume.pt`` (every ``config.checkpoint_every`` steps and at
    each epoch end); ``resume=True`` continues the run there exactly. Under
    torchrun it trains with DistributedDataParallel and only rank 0 writes.
    """
    config = config or FinetuneConfig()
    config.validate()
    ctx = init_distributed(config.device)
    device = ctx.device
    runs = RunDir(run_dir, enabled=ctx.is_main) if run_dir is not None else None
    if resume and runs is None:
        raise PoolswapError("resume needs the run directory to resume")
    if runs is not None:
        from ..model import spec_of

        if spec is None and spec_of(model) is None:
            raise PoolswapError("checkpoints need the model's architecture: pass spec='timm:NAME', "
                                "'torchvision:NAME' or 'package.module:factory' (or a model poolswap built or loaded)")
        runs.prepare(resume=resume, overwrite=overwrite)
    ctx.barrier()
    seed_everything(config.seed)
    if teacher is None:
        teacher = original_of(model)

    # data
    train_set = _as_dataset(train_data, model, config, spec, train=True)
    val_set = _as_dataset(val_data, model, config, spec, train=False) if val_data is not None else None
    seeded = SeededTransformDataset(train_set, seed=config.seed)

    # models
    model.to(device)
    teacher.to(device).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        probe = seeded[0][0].unsqueeze(0).to(device)
        num_outputs = teacher(probe).shape[1]
    classes = dataset_classes(train_set)
    label_map = find_label_map(classes, num_outputs) if classes else None
    val_label_map = None
    if val_set is not None and dataset_classes(val_set):
        val_label_map = find_label_map(dataset_classes(val_set), num_outputs)

    sampler = EpochSampler(len(seeded), batch_size=config.batch_size, shuffle=True, seed=config.seed,
                           rank=ctx.rank, world_size=ctx.world_size)
    steps_per_epoch = sampler.steps_per_epoch()
    if config.max_steps_per_epoch is not None:
        steps_per_epoch = min(steps_per_epoch, config.max_steps_per_epoch)
    total_steps = steps_per_epoch * config.epochs

    use_amp = config.amp is not None and device.type == "cuda"
    if config.amp is not None and not use_amp:
        logger.warning("AMP runs on CUDA only; training in float32 on %s", device)
    amp_dtype = torch.bfloat16 if config.amp == "bf16" else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and config.amp == "fp16")

    # resume, or start (calibrating first when asked)
    calibration: Optional[CalibrationResult] = None
    history: list[dict] = []
    start_epoch, start_step, global_step, best_score = 0, 0, 0, None
    counts: dict[str, float] = {}
    state: Optional[dict] = None
    if resume:
        state = load_resume_state(runs.resume_file)
        try:
            model.load_state_dict(state["model"])
        except RuntimeError as exc:
            raise PoolswapError(f"{runs.resume_file} does not fit this model ({first_line(exc)})") from None
        restore_fixed_betas(model, state["fixed_betas"])
        start_epoch, start_step, global_step = state["epoch"], state["step"], state["global_step"]
        history, best_score, counts = list(state["history"]), state["best_score"], dict(state["counts"])
        if state.get("steps_per_epoch") not in (None, steps_per_epoch):
            raise PoolswapError(f"{runs.resume_file} was written with {state['steps_per_epoch']} steps per epoch, "
                                f"this run has {steps_per_epoch}: resume with the same data and batch size")
        if start_epoch >= config.epochs:
            logger.info("%s already finished its %d epoch(s): nothing to resume", runs.path, config.epochs)
        else:
            logger.info("resuming %s at epoch %d, step %d", runs.path, start_epoch + 1, start_step)
    elif config.calibrate:
        cal_loader = DataLoader(SeededTransformDataset(train_set, seed=config.seed), batch_size=config.batch_size,
                                shuffle=False, num_workers=config.workers)
        calibration = calibrate(model, teacher, cal_loader, num_batches=config.calibrate, device=device)
        if ctx.is_main:
            logger.info("%s", calibration.summary())
    if runs is not None and not resume:
        args = {"config": config.to_dict(), **(extra_args or {})}
        if calibration is not None:
            args["calibration"] = {"betas": calibration.betas, "agreement_before": calibration.agreement_before,
                                   "agreement_after": calibration.agreement_after}
        runs.write_args(args)

    optimizer = build_optimizer(model, config)
    scheduler = build_scheduler(optimizer, total_steps=total_steps, config=config)
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])

    student: nn.Module = model
    if ctx.distributed:
        student = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    def resume_state(epoch: int, step: int) -> dict:
        return {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(),
            "rng": get_rng_state(),
            "epoch": epoch,
            "step": step,
            "global_step": global_step,
            "steps_per_epoch": steps_per_epoch,
            "history": history,
            "best_score": best_score,
            "counts": counts,
            # fixed temperatures (calibrated ones) are module attributes, not in the state_dict
            "fixed_betas": fixed_betas(model),
        }

    def save_state(epoch: int, step: int) -> None:
        if runs is not None and ctx.is_main:
            save_resume_state(runs.resume_file, resume_state(epoch, step))
        ctx.barrier()

    if state is not None:
        set_rng_state(state["rng"])
    loader_generator = torch.Generator()
    for epoch in range(start_epoch, config.epochs):
        epoch_start = time.perf_counter()
        if start_step == 0:
            counts = {"loss": 0.0, "batches": 0.0, **dict.fromkeys(Metrics.KEYS, 0.0), "time": 0.0}
        sampler.set_epoch(epoch, start_step)
        seeded.set_epoch(epoch)
        loader_generator.manual_seed(config.seed + epoch)
        loader = DataLoader(seeded, batch_size=config.batch_size, sampler=sampler, num_workers=config.workers,
                            generator=loader_generator, pin_memory=device.type == "cuda")
        student.train()
        if config.freeze_bn:
            freeze_bn_stats(student.modules())
        metrics = Metrics(label_map)
        metrics.counts = {k: counts[k] for k in Metrics.KEYS}
        bar = _Progress(total=steps_per_epoch, initial=start_step, epoch=epoch, epochs=config.epochs,
                        enabled=progress and ctx.is_main, log_every=config.log_every)
        step = start_step
        for batch in loader:
            if step >= steps_per_epoch:
                break
            images, labels = _split_batch(batch)
            images = images.to(device, non_blocking=True)
            targets = metrics.targets(labels.to(device)) if labels is not None else None
            with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                with torch.no_grad():
                    t_logits = teacher(images)
                s_logits = student(images)
            loss = distillation_loss(s_logits, t_logits, targets, alpha=config.alpha, temperature=config.temperature)
            if not torch.isfinite(loss):
                raise PoolswapError(f"the loss is {float(loss)} at epoch {epoch + 1}, step {step + 1}; "
                                    "lower --lr (or --beta-lr), or add --clip-grad")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if config.clip_grad is not None:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            step += 1
            global_step += 1
            metrics.update(s_logits.detach(), targets, t_logits)
            counts.update(metrics.counts)
            counts["loss"] += float(loss.detach())
            counts["batches"] += 1
            seen = max(1.0, counts["samples"])
            bar.update(loss=counts["loss"] / counts["batches"],
                       acc=counts["top1"] / counts["labelled"] if counts["labelled"] else None,
                       agree=counts["agree"] / seen)
            if runs is not None and ctx.is_main and global_step % config.log_every == 0:
                runs.log_scalars({"train/loss": float(loss.detach()), "train/lr": scheduler.get_last_lr()[0]}, global_step)
            if config.checkpoint_every and step % config.checkpoint_every == 0 and step < steps_per_epoch:
                counts["time"] += time.perf_counter() - epoch_start
                epoch_start = time.perf_counter()
                save_state(epoch, step)
        bar.close()
        counts["time"] += time.perf_counter() - epoch_start
        start_step = 0

        # epoch end: reduce, validate, record, checkpoint
        reduced = dict(zip(counts, all_reduce_sum(list(counts.values()), ctx)))
        row = _epoch_row(epoch, reduced, lr=scheduler.get_last_lr()[0], beta_mean=_beta_mean(model),
                         world=ctx.world_size)
        if val_set is not None:
            val = evaluate(model, val_set, against=teacher, label_map=val_label_map, batch_size=config.batch_size,
                           workers=config.workers, device=device, ctx=ctx)
            row.update(val_top1=val.top1, val_top5=val.top5, val_top1_subset=val.top1_subset,
                       val_agreement=val.agreement)
        history.append(row)
        score = _score(row)
        improved = best_score is None or score > best_score
        if improved:
            best_score = score
        if ctx.is_main:
            logger.info("epoch %d/%d: %s", epoch + 1, config.epochs, _row_text(row))
        if runs is not None:
            runs.write_summary(history)
            runs.log_scalars({f"epoch/{k}": v for k, v in row.items() if k != "epoch" and isinstance(v, float)}, epoch + 1)
            runs.save_checkpoint(model, "last", spec=spec)
            if improved:
                runs.save_checkpoint(model, "best", spec=spec)
            save_state(epoch + 1, 0)
    if runs is not None:
        runs.close()
    ctx.close()
    return FinetuneResult(model=model, history=history, calibration=calibration,
                          run_dir=runs.path if runs is not None else None, steps=global_step)


def _epoch_row(epoch: int, c: dict, *, lr: float, beta_mean: Optional[float], world: int) -> dict:
    def frac(key: str, denominator: float) -> Optional[float]:
        return c[key] / denominator if denominator else None

    return {
        "epoch": epoch + 1,
        "train_loss": frac("loss", c["batches"]),
        "train_top1": frac("top1", c["labelled"]),
        "train_top5": frac("top5", c["labelled"]),
        "train_agreement": frac("agree", c["samples"]),
        "lr": lr,
        "beta_mean": beta_mean,
        "time_s": c["time"] / world,
    }


def _score(row: dict) -> float:
    for key in ("val_top1", "val_agreement", "train_agreement"):
        if row.get(key) is not None:
            return float(row[key])
    return -float(row["train_loss"] or 0.0)


def _row_text(row: dict) -> str:
    return ", ".join(f"{k} {v:.4g}" for k, v in row.items() if isinstance(v, float))
