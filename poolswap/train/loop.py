"""The fine-tune loop: distil a converted network from its original, resumably, on one or many processes."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import random
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional, Union

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..errors import PoolswapError, first_line
from ..ops import fixed_betas, restore_fixed_betas, softpool_modules
from ..calibration import CalibrationResult, calibrate
from .config import FinetuneConfig
from ..data.datasets import EpochSampler, SeededTransformDataset, build_transform, dataset_classes, image_dataset
from ..data.datasets import label_map as find_label_map
from ..data.datasets import resolve_data_config
from .distill import distillation_loss, frozen_teacher, original_of, shared_parameters
from .distributed import all_reduce_sum, init_distributed
from .evaluate import Metrics, evaluate
from .guard import CollapseGuard
from .lr_find import LrFindResult, find_lr
from .optim import ParameterCount, build_optimizer, build_scheduler, count_parameters, is_softpool, train_mode
from .progress import Progress
from .resume import get_rng_state, load_resume_state, save_resume_state, set_rng_state
from .run_dir import RunDir

__all__ = ["FinetuneResult", "Trainer", "check_resumed_config", "finetune", "seed_everything"]

#: Settings a resumed run may change: where and how fast it runs, how often it logs and saves, and how many epochs.
RESUME_MAY_CHANGE = ("epochs", "workers", "device", "log_every", "checkpoint_every")

logger = logging.getLogger("poolswap.train")

DataArg = Union[Dataset, str, os.PathLike]


@dataclass
class FinetuneResult:
    """The trained student (unwrapped), one summary row per epoch, the calibration (if any), what was trained."""

    model: nn.Module
    history: list[dict] = field(default_factory=list)
    calibration: Optional[CalibrationResult] = None
    run_dir: Optional[Path] = None
    steps: int = 0
    parameters: Optional[ParameterCount] = None  # what was trained: weights and betas, and what stayed frozen
    lr_find: Optional[LrFindResult] = None  # the range test of lr='auto'
    start: Optional[dict] = None  # validation before training: val_top1, val_agreement, ...
    collapse: Optional[str] = None  # the collapse guard's warning, if it fired


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


def _plain(value):
    """``value`` with tuples as lists (a config read back from YAML has lists)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def check_resumed_config(saved: dict, config: FinetuneConfig, path: Path, *, done: int) -> bool:
    """Refuse, in one line, settings a resumed run cannot change; True when ``config`` asks for more epochs.

    ``saved``: the run's ``args.yaml`` config; ``done``: the epochs it finished. Only
    :data:`RESUME_MAY_CHANGE` may differ; fewer epochs than already finished is refused.
    """
    import dataclasses

    from ..options import flag_of

    now = config.to_dict()
    for f in dataclasses.fields(FinetuneConfig):
        if f.name in RESUME_MAY_CHANGE or f.name not in saved:
            continue
        if _plain(saved[f.name]) != _plain(now[f.name]):
            what = flag_of(f) if f.metadata.get("cli", True) else f.name
            raise PoolswapError(
                f"{path} was run with {what} {saved[f.name]!r}; a resumed run cannot change it to {now[f.name]!r} "
                f"(it may change {', '.join('--' + n.replace('_', '-') for n in RESUME_MAY_CHANGE)}): start a new "
                "run with -o NEW_DIR")
    before = saved.get("epochs")
    if config.epochs < done:
        raise PoolswapError(f"{path} has finished {done} epoch(s) already; --epochs {config.epochs} would undo "
                            f"them: give --epochs {done} or more")
    if isinstance(before, int) and config.epochs != before:
        logger.info("%s: %d epoch(s) now, %d before", path, config.epochs, before)
        return True
    return False


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


class Trainer:
    """One fine-tune, in named steps; :func:`finetune` builds one and calls :meth:`run`.

    Set-up: :meth:`check_models` (before anything is written), :meth:`set_up_run`,
    :meth:`set_up_data`, :meth:`set_up_models`, :meth:`set_up_schedule`; then
    :meth:`resume_from_state` or :meth:`calibrate`, :meth:`write_args`,
    :meth:`set_up_optimizer`; then for each epoch :meth:`train_epoch` and
    :meth:`end_epoch` (reduce, validate, record, checkpoint). :meth:`save_state`
    writes the resume state, :meth:`resume_state` is what it writes.
    """

    def __init__(self, model: nn.Module, *, teacher: Optional[nn.Module], train_data: DataArg,
                 val_data: Optional[DataArg], config: FinetuneConfig, run_dir: Optional[Union[str, os.PathLike]],
                 resume: bool, overwrite: bool, spec, extra_args: Optional[dict], progress: bool) -> None:
        self.model = model
        self.given_teacher = teacher
        self.train_data, self.val_data = train_data, val_data
        self.config = config
        self.run_dir, self.resume, self.overwrite = run_dir, resume, overwrite
        self.spec, self.extra_args, self.progress = spec, extra_args, progress
        self.ctx = None
        self.runs: Optional[RunDir] = None
        self.parameters: Optional[ParameterCount] = None
        self.calibration: Optional[CalibrationResult] = None
        self.history: list[dict] = []
        self.start_epoch, self.start_step, self.global_step = 0, 0, 0
        self.best_score: Optional[float] = None
        self.counts: dict[str, float] = {}
        self.state: Optional[dict] = None
        self.extended = False  # a resumed run given more epochs than it was set up with
        self.created_run_dir = False
        self.interrupted = False  # set by Ctrl-C: stop after the step in flight
        self.lr_find: Optional[LrFindResult] = None
        self.start_metrics: Optional[dict] = None  # validation before training
        self.guard: Optional[CollapseGuard] = None

    # set-up
    def check_models(self) -> None:
        """Refuse, before anything is written, a student with nothing but betas to train (unless
        ``only_betas``) or nothing at all, and a student that shares parameters with its teacher."""
        count = count_parameters(self.model)
        if self.config.only_betas:
            if count.betas == 0:
                raise PoolswapError("only_betas: the student has no learnt betas to train; convert it with "
                                    "learn_beta='scalar' or 'channel' (--learn-beta)")
            count = ParameterCount(weights=0, betas=count.betas, frozen=count.frozen + count.weights)
        elif count.weights == 0:
            if count.betas == 0:
                raise PoolswapError(f"the student has nothing to train: all its {count.frozen:,} parameters have "
                                    "requires_grad=False; unfreeze them (model.requires_grad_(True))")
            raise PoolswapError(f"only the student's {count.betas:,} SoftPool betas would train: its {count.frozen:,} "
                                "weights have requires_grad=False; unfreeze them (model.requires_grad_(True)), or "
                                "ask for a betas-only fine-tune with only_betas=True (--only-betas)")
        if self.given_teacher is not None and shared_parameters(self.model, self.given_teacher):
            raise PoolswapError("the student shares parameters with the teacher, so training would change the "
                                "teacher too; convert a copy of the original (convert's default, inplace=False)")
        self.parameters = count

    def set_up_run(self) -> None:
        """Processes, the run directory, the seed."""
        self.ctx = init_distributed(self.config.device)
        self.device = self.ctx.device
        if self.run_dir is not None:
            self.runs = RunDir(self.run_dir, enabled=self.ctx.is_main)
        if self.resume and self.runs is None:
            raise PoolswapError("resume needs the run directory to resume")
        if self.runs is not None:
            from ..model import spec_of

            if self.spec is None and spec_of(self.model) is None:
                raise PoolswapError("checkpoints need the model's architecture: pass spec='timm:NAME', "
                                    "'torchvision:NAME' or 'package.module:factory' (or a model poolswap built or loaded)")
            self.created_run_dir = not self.runs.path.exists()
            self.runs.prepare(resume=self.resume, overwrite=self.overwrite)
        self.ctx.barrier()
        seed_everything(self.config.seed)

    def teacher_to_use(self) -> nn.Module:
        """The teacher passed in, or the student's original rebuilt (on the training device)."""
        if self.given_teacher is not None:
            return self.given_teacher
        return original_of(self.model).to(self.device)

    def set_up_data(self) -> None:
        config = self.config
        self.train_set = _as_dataset(self.train_data, self.model, config, self.spec, train=True)
        self.val_set = (_as_dataset(self.val_data, self.model, config, self.spec, train=False)
                        if self.val_data is not None else None)
        self.seeded = SeededTransformDataset(self.train_set, seed=config.seed)

    def set_up_models(self) -> None:
        """The student on the device; the number of outputs, and the data's classes mapped onto them."""
        self.model.to(self.device)
        if self.ctx.is_main:
            logger.info("%s", self.parameters.summary())
        with torch.no_grad():
            probe = self.seeded[0][0].unsqueeze(0).to(self.device)
            num_outputs = self.teacher(probe).shape[1]
        classes = dataset_classes(self.train_set)
        self.label_map = find_label_map(classes, num_outputs) if classes else None
        self.val_label_map = None
        if self.val_set is not None and dataset_classes(self.val_set):
            self.val_label_map = find_label_map(dataset_classes(self.val_set), num_outputs)

    def set_up_schedule(self) -> None:
        """Steps per epoch, and mixed precision."""
        config, ctx = self.config, self.ctx
        self.sampler = EpochSampler(len(self.seeded), batch_size=config.batch_size, shuffle=True, seed=config.seed,
                                    rank=ctx.rank, world_size=ctx.world_size)
        self.steps_per_epoch = self.sampler.steps_per_epoch()
        if config.max_steps_per_epoch is not None:
            self.steps_per_epoch = min(self.steps_per_epoch, config.max_steps_per_epoch)
        self.total_steps = self.steps_per_epoch * config.epochs
        self.use_amp = config.amp is not None and self.device.type == "cuda"
        if config.amp is not None and not self.use_amp:
            logger.warning("AMP runs on CUDA only; training in float32 on %s", self.device)
        self.amp_dtype = torch.bfloat16 if config.amp == "bf16" else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp and config.amp == "fp16")

    def resume_from_state(self) -> None:
        """Read ``resume.pt``: the student, the position, the history (optimiser and RNG come later)."""
        runs, model = self.runs, self.model
        state = self.state = load_resume_state(runs.resume_file)
        try:
            model.load_state_dict(state["model"])
        except RuntimeError as exc:
            raise PoolswapError(f"{runs.resume_file} does not fit this model ({first_line(exc)})") from None
        restore_fixed_betas(model, state["fixed_betas"])
        self.start_epoch, self.start_step, self.global_step = state["epoch"], state["step"], state["global_step"]
        self.history, self.best_score, self.counts = list(state["history"]), state["best_score"], dict(state["counts"])
        self.start_metrics = state.get("start")
        self.guard_state = state.get("guard")
        if state.get("steps_per_epoch") not in (None, self.steps_per_epoch):
            raise PoolswapError(f"{runs.resume_file} was written with {state['steps_per_epoch']} steps per epoch, "
                                f"this run has {self.steps_per_epoch}: resume with the same data and batch size")
        saved = runs.read_args().get("config") if runs.args_file.is_file() else None
        if isinstance(saved, dict):
            self.extended = check_resumed_config(saved, self.config, runs.path, done=self.start_epoch)
        if self.start_epoch >= self.config.epochs:
            logger.info("%s already finished its %d epoch(s): nothing to resume", runs.path, self.config.epochs)
        else:
            logger.info("resuming %s at epoch %d, step %d", runs.path, self.start_epoch + 1, self.start_step)

    def calibrate(self) -> None:
        """Choose each site's beta before any weight update."""
        config = self.config
        loader = DataLoader(SeededTransformDataset(self.train_set, seed=config.seed), batch_size=config.batch_size,
                            shuffle=False, num_workers=config.workers)
        self.calibration = calibrate(self.model, self.teacher, loader, num_batches=config.calibrate, device=self.device)
        if self.ctx.is_main:
            logger.info("%s", self.calibration.summary())

    def find_lr(self) -> None:
        """``lr='auto'``: the range test; the run then uses (and records) the rate it chose."""
        self.lr_find = find_lr(self.model, self.teacher, SeededTransformDataset(self.train_set, seed=self.config.seed),
                               self.config, device=self.device, label_map=self.label_map, seed=self.config.seed)
        self.config = dataclasses.replace(self.config, lr=self.lr_find.lr)
        if self.ctx.is_main:
            logger.info("%s", self.lr_find.summary())

    def measure_start(self) -> None:
        """Validate before training: the collapse guard's reference, and ``best`` until an epoch beats it."""
        if self.val_set is None:
            self.best_score = -float("inf")
        else:
            val = evaluate(self.model, self.val_set, against=self.teacher, label_map=self.val_label_map,
                           batch_size=self.config.batch_size, workers=self.config.workers, device=self.device,
                           ctx=self.ctx)
            self.start_metrics = {"val_top1": val.top1, "val_top5": val.top5, "val_top1_subset": val.top1_subset,
                                  "val_agreement": val.agreement}
            self.best_score = _score(self.start_metrics)
            if self.ctx.is_main:
                logger.info("before training: %s", _row_text(self.start_metrics))
        if self.runs is not None:
            self.runs.save_checkpoint(self.model, "best", spec=self.spec)

    def write_args(self) -> None:
        if self.runs is not None and self.resume and self.extended:
            # the longer run is the run now: a later resume continues it, not the shorter one
            args = self.runs.read_args()
            args["config"] = {**args["config"], "epochs": self.config.epochs}
            self.runs.write_args(args)
        if self.runs is None or self.resume:
            return
        args = {"config": self.config.to_dict(), **(self.extra_args or {})}
        if self.lr_find is not None:
            args["lr_find"] = self.lr_find.as_dict()
        if self.calibration is not None:
            c = self.calibration
            args["calibration"] = {"betas": c.betas, "agreement_before": c.agreement_before,
                                   "agreement_after": c.agreement_after}
        self.runs.write_args(args)

    def set_up_optimizer(self) -> None:
        """Optimiser and schedule (restored when resuming); the student wrapped for DDP under torchrun."""
        self.optimizer = build_optimizer(self.model, self.config)
        self.scheduler = build_scheduler(self.optimizer, total_steps=self.total_steps, config=self.config)
        if self.state is not None:
            self.optimizer.load_state_dict(self.state["optimizer"])
            self.scheduler.load_state_dict(self.state["scheduler"])
            self.scaler.load_state_dict(self.state["scaler"])
            if self.extended:
                # the saved schedule ends where the shorter run ended: stretch it over the epochs now asked for
                # (as timm does on a resume with more epochs) and set the learning rate it gives at this step
                step = self.scheduler.last_epoch
                for factor, base, group in zip(self.scheduler.lr_lambdas, self.scheduler.base_lrs,
                                               self.optimizer.param_groups):
                    factor.total_steps = max(1, int(self.total_steps))
                    group["lr"] = base * factor(step)
        self.student: nn.Module = self.model
        if self.ctx.distributed:
            device = self.device
            self.student = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[device.index] if device.type == "cuda" else None)

    # checkpoint / resume
    def resume_state(self, epoch: int, step: int) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": get_rng_state(),
            "epoch": epoch,
            "step": step,
            "global_step": self.global_step,
            "steps_per_epoch": self.steps_per_epoch,
            "history": self.history,
            "best_score": self.best_score,
            "counts": self.counts,
            "start": self.start_metrics,
            "guard": self.guard.state_dict() if self.guard is not None else None,
            # fixed temperatures (calibrated ones) are module attributes, not in the state_dict
            "fixed_betas": fixed_betas(self.model),
        }

    def save_state(self, epoch: int, step: int) -> None:
        if self.runs is not None and self.ctx.is_main:
            save_resume_state(self.runs.resume_file, self.resume_state(epoch, step))
        self.ctx.barrier()

    # training
    def train(self) -> None:
        if self.state is not None:
            set_rng_state(self.state["rng"])
        self.loader_generator = torch.Generator()
        self.guard = CollapseGuard(self.config.lr, batch_size=self.config.batch_size,
                                   watch_agreement=self.config.alpha > 0)
        self.guard.load_state_dict(getattr(self, "guard_state", None))
        with self.stop_on_interrupt():
            for epoch in range(self.start_epoch, self.config.epochs):
                self.train_epoch(epoch)
                self.end_epoch(epoch)

    @contextlib.contextmanager
    def stop_on_interrupt(self) -> Iterator[None]:
        """Ctrl-C (SIGINT) stops after the step in flight, which is saved as a resume state; a second one at once."""
        if (self.runs is None or threading.current_thread() is not threading.main_thread()
                or signal.getsignal(signal.SIGINT) is signal.SIG_IGN):  # a process that ignores SIGINT keeps doing so
            yield
            return

        def on_sigint(signum, frame) -> None:
            if self.interrupted:
                raise KeyboardInterrupt
            self.interrupted = True
            logger.warning("interrupted: stopping after this step (Ctrl-C again to stop at once)")

        previous = signal.signal(signal.SIGINT, on_sigint)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def stop_if_interrupted(self, epoch: int, step: int) -> None:
        if not self.interrupted:
            return
        self.save_state(epoch, step)
        logger.warning("saved the resume state at epoch %d, step %d; continue with `poolswap finetune --resume %s`",
                       epoch + 1, step, self.runs.path)
        raise KeyboardInterrupt

    def train_epoch(self, epoch: int) -> None:
        """The steps of one epoch (from ``start_step`` when resuming mid-epoch)."""
        config, device = self.config, self.device
        epoch_start = time.perf_counter()
        if self.start_step == 0:
            self.counts = {"loss": 0.0, "batches": 0.0, **dict.fromkeys(Metrics.KEYS, 0.0), "time": 0.0}
        counts = self.counts
        if self.start_step == 0:
            self.guard.start_epoch()
        self.sampler.set_epoch(epoch, self.start_step)
        self.seeded.set_epoch(epoch)
        self.loader_generator.manual_seed(config.seed + epoch)
        loader = DataLoader(self.seeded, batch_size=config.batch_size, sampler=self.sampler,
                            num_workers=config.workers, generator=self.loader_generator,
                            pin_memory=device.type == "cuda")
        train_mode(self.student, config)
        metrics = Metrics(self.label_map)
        metrics.counts = {k: counts[k] for k in Metrics.KEYS}
        bar = Progress(total=self.steps_per_epoch, initial=self.start_step, epoch=epoch, epochs=config.epochs,
                       enabled=self.progress and self.ctx.is_main, log_every=config.log_every)
        step = self.start_step
        for batch in loader:
            if step >= self.steps_per_epoch:
                break
            loss, s_logits, t_logits, targets = self.train_step(batch, epoch, step, metrics)
            step += 1
            self.global_step += 1
            metrics.update(s_logits.detach(), targets, t_logits)
            with torch.no_grad():
                batch_agreement = float((s_logits.argmax(1) == t_logits.argmax(1)).float().mean())
            self.guard.observe_batch(batch_agreement, epoch=epoch, step=step - 1)
            counts.update(metrics.counts)
            counts["loss"] += float(loss.detach())
            counts["batches"] += 1
            seen = max(1.0, counts["samples"])
            bar.update(loss=counts["loss"] / counts["batches"],
                       acc=counts["top1"] / counts["labelled"] if counts["labelled"] else None,
                       agree=counts["agree"] / seen)
            if self.runs is not None and self.ctx.is_main and self.global_step % config.log_every == 0:
                self.runs.log_scalars({"train/loss": float(loss.detach()),
                                       "train/lr": self.scheduler.get_last_lr()[0]}, self.global_step)
            if config.checkpoint_every and step % config.checkpoint_every == 0 and step < self.steps_per_epoch:
                counts["time"] += time.perf_counter() - epoch_start
                epoch_start = time.perf_counter()
                self.save_state(epoch, step)
            if self.interrupted and step < self.steps_per_epoch:
                counts["time"] += time.perf_counter() - epoch_start
                bar.close()
                self.stop_if_interrupted(epoch, step)
        bar.close()
        counts["time"] += time.perf_counter() - epoch_start
        self.start_step = 0

    def train_step(self, batch, epoch: int, step: int, metrics: Metrics):
        """One optimiser step; returns (loss, student logits, teacher logits, targets)."""
        config, device = self.config, self.device
        images, labels = _split_batch(batch)
        images = images.to(device, non_blocking=True)
        targets = metrics.targets(labels.to(device)) if labels is not None else None
        with torch.autocast(device.type, dtype=self.amp_dtype, enabled=self.use_amp):
            with torch.no_grad():
                t_logits = self.teacher(images)
            s_logits = self.student(images)
        loss = distillation_loss(s_logits, t_logits, targets, alpha=config.alpha, temperature=config.temperature)
        if not torch.isfinite(loss):
            raise PoolswapError(f"the loss is {float(loss)} at epoch {epoch + 1}, step {step + 1}; "
                                "lower --lr (or --beta-lr), or add --clip-grad")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if config.clip_grad is not None:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), config.clip_grad)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return loss, s_logits, t_logits, targets

    def end_epoch(self, epoch: int) -> None:
        """Reduce the counts over ranks, validate, record the summary row, checkpoint."""
        config, ctx, runs = self.config, self.ctx, self.runs
        reduced = dict(zip(self.counts, all_reduce_sum(list(self.counts.values()), ctx)))
        row = _epoch_row(epoch, reduced, lr=self.scheduler.get_last_lr()[0], beta_mean=_beta_mean(self.model),
                         world=ctx.world_size)
        if self.val_set is not None:
            val = evaluate(self.model, self.val_set, against=self.teacher, label_map=self.val_label_map,
                           batch_size=config.batch_size, workers=config.workers, device=self.device, ctx=ctx)
            row.update(val_top1=val.top1, val_top5=val.top5, val_top1_subset=val.top1_subset,
                       val_agreement=val.agreement)
        self.guard.observe_validation(self.start_metrics, row, epoch=epoch)
        row["collapsed"] = self.guard.epoch_collapsed
        self.history.append(row)
        score = _score(row)
        # an epoch in which the run collapsed never becomes `best`: it keeps the weights from before
        improved = not self.guard.epoch_collapsed and (self.best_score is None or score > self.best_score)
        if improved:
            self.best_score = score
        if ctx.is_main:
            logger.info("epoch %d/%d: %s", epoch + 1, config.epochs, _row_text(row))
        if runs is not None:
            runs.write_summary(self.history)
            runs.log_scalars({f"epoch/{k}": v for k, v in row.items() if k != "epoch" and isinstance(v, float)},
                             epoch + 1)
            runs.save_checkpoint(self.model, "last", spec=self.spec)
            if improved:
                runs.save_checkpoint(self.model, "best", spec=self.spec)
            self.save_state(epoch + 1, 0)

    # the whole run
    def run(self) -> FinetuneResult:
        """Every step in order; the teacher, and the student's ``requires_grad`` flags, are left as they were."""
        self.check_models()
        try:
            self.set_up_run()
            with contextlib.ExitStack() as stack:
                self.teacher = stack.enter_context(frozen_teacher(self.teacher_to_use(), self.device))
                self.set_up_data()
                self.set_up_models()
                self.set_up_schedule()
                if self.resume:
                    self.resume_from_state()
                elif self.config.calibrate:
                    self.calibrate()
                if self.config.only_betas:
                    stack.enter_context(_weights_frozen(self.model))
                if not self.resume:
                    if self.config.lr == "auto":
                        self.find_lr()
                    self.measure_start()
                self.write_args()
                self.set_up_optimizer()
                self.train()
        except BaseException:
            # a run that stopped before its first resume state leaves nothing behind to be mistaken for one
            if self.runs is not None and not self.resume:
                self.runs.abandon(created=self.created_run_dir)
            raise
        finally:
            if self.runs is not None:
                self.runs.close()
            if self.ctx is not None:
                self.ctx.close()
        return FinetuneResult(model=self.model, history=self.history, calibration=self.calibration,
                              run_dir=self.runs.path if self.runs is not None else None, steps=self.global_step,
                              parameters=self.parameters, lr_find=self.lr_find, start=self.start_metrics,
                              collapse=self.guard.message if self.guard is not None else None)


@contextlib.contextmanager
def _weights_frozen(model: nn.Module) -> Iterator[None]:
    """Every parameter but SoftPool betas has ``requires_grad=False`` inside; the flags are restored after."""
    frozen = [p for m in model.modules() if not is_softpool(m) for p in m.parameters(recurse=False) if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in frozen:
            p.requires_grad_(True)


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
    """Fine-tune the converted ``model`` by distillation from ``teacher`` (default: its original, rebuilt).

    Only ``model`` changes: the teacher and everything else passed in are left as
    they were (a teacher on another device is copied there). The number of
    parameters trained is logged; a student whose weights are all frozen is
    refused unless ``config.only_betas`` asks for a betas-only fine-tune.

    ``train_data``/``val_data``: Datasets yielding (image, label) with label -1 for
    unlabelled samples, or image folders (preprocessed with the model's data
    config). With ``run_dir``, writes ``args.yaml``, ``summary.csv``, ``last.safetensors``,
    ``best.safetensors`` and ``resume.pt`` (every ``config.checkpoint_every`` steps and at
    each epoch end); ``resume=True`` continues the run there exactly. Under
    torchrun it trains with DistributedDataParallel and only rank 0 writes.
    """
    config = config or FinetuneConfig()
    config.validate()
    trainer = Trainer(model, teacher=teacher, train_data=train_data, val_data=val_data, config=config,
                      run_dir=run_dir, resume=resume, overwrite=overwrite, spec=spec, extra_args=extra_args,
                      progress=progress)
    return trainer.run()


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
