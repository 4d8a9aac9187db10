"""``StudyConfig``: what a study compares and how it fine-tunes and measures, checked once."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional, Union

from ..options import OptionError, check_choice, check_fraction, check_int, check_number, option
from ..train.config import DEFAULT_LR

__all__ = ["AUGMENTS", "RECIPES", "VARIANTS", "StudyConfig"]

#: conversions a study can compare with the original: beta=1 fixed, calibrated fixed, beta=1 with a learnt
#: scalar or per-channel beta
VARIANTS = ("b1", "calibrated", "scalar", "channel")
#: distill: the original is the teacher, no labels (alpha=1), the student in eval mode (BatchNorm statistics frozen,
#: dropout off); labels: cross-entropy on the folder's labels (alpha=0), BatchNorm and dropout training; head: a new
#: head with one output per class of the folder, then as labels (transfer learning)
RECIPES = ("distill", "labels", "head")
#: training augmentation: none (distillation's default: the teacher sees the student's pixels), flip, or crop
#: (a random-resized crop and a flip, for training from scratch)
AUGMENTS = ("none", "flip", "crop")


@dataclass
class StudyConfig:
    """A study's settings; each is also a ``poolswap study`` flag."""

    seeds: tuple[int, ...] = option((0, 1, 2), "one fine-tune per seed and model: data order, dropout, consistency "
                                    "offsets (default: 0 1 2)", metavar="SEED", group="study")
    variants: tuple[str, ...] = option(("b1", "calibrated"), "conversions compared with the original: "
                                       + ", ".join(VARIANTS) + " (default: b1 calibrated)",
                                       metavar="VARIANT", group="study")
    recipe: str = option("distill", "distill: from the original, no labels; labels: cross-entropy on the "
                         "folder's classes; head: a new head for the folder's classes, then as labels",
                         choices=RECIPES, group="study")
    eval_fraction: float = option(0.2, "fraction of each class held out for evaluation", group="study")
    max_eval: Optional[int] = option(None, "at most N evaluation images, spread over classes (default: all held out)",
                                     metavar="N", group="study")
    max_train: Optional[int] = option(None, "at most N fine-tune images, spread over classes (default: the rest)",
                                      metavar="N", group="study")
    # the recipe (FinetuneConfig's defaults)
    epochs: int = option(1, "fine-tune epochs", group="recipe")
    max_steps: Optional[int] = option(None, "stop each epoch after N steps", metavar="N", group="recipe")
    batch_size: int = option(32, "images per step", group="recipe")
    lr: Union[float, str] = option(DEFAULT_LR, "peak learning rate, or 'auto'", metavar="LR|auto", group="recipe")
    beta_lr: Optional[float] = option(None, "learning rate of learnt betas (default: --lr)", group="recipe")
    head_lr: Optional[float] = option(None, "learning rate of the new head of --recipe head (default: --lr)",
                                      group="recipe")
    augment: str = option("none", "training augmentation: none, flip, or crop (a random-resized crop and a flip, "
                          "for training from scratch)", choices=AUGMENTS, group="recipe")
    cache: bool = option(False, "hold the decoded images in memory (about H x W x 3 bytes each) instead of "
                         "decoding them every epoch", group="recipe")
    calibrate: int = option(4, "batches for the calibrated conversion's betas (fine-tune images)", metavar="N",
                            group="recipe")
    # measuring
    passes: int = option(2, "shift-consistency passes over the evaluation images", metavar="N", group="measure")
    max_shift: Optional[int] = option(None, "shift-consistency offsets in [0, S) (default: input height / 7)",
                                      metavar="S", group="measure")
    latency_time: float = option(1.0, "seconds of timing per model for the latency of one forward (batch 1)",
                                 metavar="SECONDS", group="measure")
    device: str = option("cpu", "cpu, cuda, cuda:N or auto", group="measure")
    data_config: dict = option(help="overrides of the model's data config", default_factory=dict, cli=False)

    def __post_init__(self) -> None:
        self.seeds = tuple(self.seeds)
        self.variants = tuple(self.variants)
        if not self.seeds:
            raise OptionError("seeds", "must name at least one seed")
        for seed in self.seeds:
            check_int("seeds", seed, 0)
        if len(set(self.seeds)) != len(self.seeds):
            raise OptionError("seeds", f"must not repeat a seed (a repeat is the same run twice), got "
                                       f"{' '.join(map(str, self.seeds))}")
        if not self.variants:
            raise OptionError("variants", "must name at least one conversion")
        for variant in self.variants:
            check_choice("variants", variant, VARIANTS)
        if len(set(self.variants)) != len(self.variants):
            raise OptionError("variants", "must not repeat a conversion")
        check_choice("recipe", self.recipe, RECIPES)
        check_choice("augment", self.augment, AUGMENTS)
        check_fraction("eval_fraction", self.eval_fraction)
        if not 0 < self.eval_fraction < 1:
            raise OptionError("eval_fraction", f"must be between 0 and 1 (exclusive), got {self.eval_fraction}")
        for name in ("max_eval", "max_train", "max_steps", "max_shift"):
            if getattr(self, name) is not None:
                check_int(name, getattr(self, name))
        check_int("epochs", self.epochs)
        check_int("batch_size", self.batch_size)
        check_int("calibrate", self.calibrate)
        check_int("passes", self.passes)
        check_number("latency_time", self.latency_time)
        if self.beta_lr is not None:
            check_number("beta_lr", self.beta_lr)
        if self.head_lr is not None:
            check_number("head_lr", self.head_lr)
        from ..train.config import FinetuneConfig

        self.lr = FinetuneConfig(lr=self.lr).lr  # 'auto' or a number, checked there

    def finetune_config(self, *, seed: int, calibrate: bool):
        """The fine-tune of one unit: the recipe, the seed, calibration for the calibrated conversion."""
        from ..train.config import FinetuneConfig

        distill = self.recipe == "distill"
        return FinetuneConfig(epochs=self.epochs, max_steps_per_epoch=self.max_steps, batch_size=self.batch_size,
                              lr=self.lr, beta_lr=self.beta_lr, head_lr=self.head_lr, alpha=1.0 if distill else 0.0,
                              # a model trained on labels keeps its regularisers and learns its BatchNorm statistics
                              dropout=not distill, freeze_bn=distill,
                              calibrate=self.calibrate if calibrate else 0, seed=seed, device=self.device,
                              data_config=dict(self.data_config))

    def settings(self) -> dict:
        """What the results depend on (not the seeds or variants: more of those extend a study)."""
        values = dataclasses.asdict(self)
        for key in ("seeds", "variants", "latency_time", "device", "cache"):
            values.pop(key)
        return values
