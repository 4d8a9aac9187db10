"""``poolswap finetune``: distil a converted model from its original, resumably, on one or many processes."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from ...errors import PoolswapError
from ..arguments import add_data_arguments, data_overrides

NAME = "finetune"
HELP = "fine-tune a converted model by distillation from its original (calibration, resume, torchrun)"
DESCRIPTION = (
    "Fine-tune CONVERTED (a file from `poolswap convert`) on the ImageFolder tree DIR/train (DIR/val for "
    "validation) by knowledge distillation from the original model, rebuilt from CONVERTED's architecture "
    "and weights unless --teacher says otherwise. Runs under `torchrun --nproc_per_node=N` unchanged."
)
ORDER = 30

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("converted", metavar="CONVERTED", nargs="?",
                        help="converted model file from `poolswap convert` (not needed with --resume)")
    parser.add_argument("-o", "--output", metavar="RUN_DIR", help="run directory: args.yaml, summary.csv, checkpoints")
    parser.add_argument("--teacher", metavar="MODEL",
                        help="teacher: a model file or a spec such as timm:NAME (default: CONVERTED's original)")
    parser.add_argument("--teacher-weights", metavar="FILE", help="checkpoint for a --teacher spec (default: none)")
    data = add_data_arguments(parser)
    data.add_argument("--hflip", action="store_true", help="random horizontal flips of training images (default: off)")
    data.add_argument("--max-steps", type=int, help="stop each epoch after N steps (default: the whole epoch)")
    optim = parser.add_argument_group("optimisation")
    optim.add_argument("--epochs", type=int, default=1, help="passes over the training data")
    optim.add_argument("--optimizer", choices=("sgd", "adamw"), default="sgd", help="optimiser")
    optim.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (cosine schedule)")
    optim.add_argument("--beta-lr", type=float, help="learning rate of learnt betas (default: --lr)")
    optim.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (Nesterov)")
    optim.add_argument("--weight-decay", type=float, default=1e-4, help="weight decay, never on norms, biases or betas")
    optim.add_argument("--warmup-steps", type=int, default=0, help="linear warmup steps")
    optim.add_argument("--min-lr-ratio", type=float, default=0.0, help="final lr as a fraction of --lr")
    optim.add_argument("--clip-grad", type=float, help="clip the gradients' global L2 norm (default: off)")
    optim.add_argument("--freeze-bn", action="store_true", help="keep BatchNorm running statistics (default: off)")
    optim.add_argument("--only-betas", action="store_true",
                       help="train the learnt SoftPool betas alone, weights frozen; without it a model whose weights "
                            "are all frozen is refused (default: off)")
    optim.add_argument("--amp", choices=("bf16", "fp16"), help="mixed precision on CUDA (default: off)")
    distill = parser.add_argument_group("distillation")
    distill.add_argument("--alpha", type=float, default=0.5, help="weight of the distillation term (1: no labels used)")
    distill.add_argument("--temperature", type=float, default=2.0, help="distillation temperature T")
    distill.add_argument("--calibrate", type=int, default=0, metavar="N",
                         help="choose each site's beta on N batches before training (default: 0, off)")
    run_group = parser.add_argument_group("run")
    run_group.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR exactly where it stopped")
    run_group.add_argument("--overwrite", action="store_true", help="replace a run already in RUN_DIR (default: refuse)")
    run_group.add_argument("--seed", type=int, default=0, help="random seed")
    run_group.add_argument("--checkpoint-every", type=int, default=0, metavar="N",
                           help="also save the resume state every N steps (default: 0, at epoch ends)")
    run_group.add_argument("--log-every", type=int, default=20, help="log a progress line every N steps off a terminal")
    run_group.add_argument("--no-progress", action="store_true", help="no progress bar or progress lines")


_CONFIG_FLAGS = {
    "epochs": "epochs", "batch_size": "batch_size", "max_steps": "max_steps_per_epoch", "optimizer": "optimizer",
    "lr": "lr", "beta_lr": "beta_lr", "momentum": "momentum", "weight_decay": "weight_decay",
    "warmup_steps": "warmup_steps", "min_lr_ratio": "min_lr_ratio", "clip_grad": "clip_grad",
    "freeze_bn": "freeze_bn", "only_betas": "only_betas", "amp": "amp", "alpha": "alpha", "temperature": "temperature",
    "calibrate": "calibrate", "seed": "seed", "workers": "workers", "device": "device",
    "checkpoint_every": "checkpoint_every", "log_every": "log_every", "hflip": "hflip",
}


def run(args: argparse.Namespace) -> int:
    from ...model import load_model
    from ...train import FinetuneConfig, finetune
    from ...train.data import split_dir
    from ...train.run_dir import RunDir

    if int(os.environ.get("RANK", "0")) != 0:
        logging.getLogger("poolswap").setLevel(logging.WARNING)
    if args.resume:
        run_dir = Path(args.resume)
        if args.output and Path(args.output).resolve() != run_dir.resolve():
            raise PoolswapError(f"--resume {args.resume} and -o {args.output} name different run directories")
        saved = RunDir(run_dir).read_args() if (run_dir / "args.yaml").is_file() else None
        if not saved or "command" not in saved:
            raise PoolswapError(f"cannot resume: {run_dir} holds no args.yaml of a `poolswap finetune` run")
        command = saved["command"]
        config = FinetuneConfig.from_dict({**saved["config"], "workers": args.workers, "device": args.device})
    else:
        if not args.converted or not args.data or not args.output:
            raise PoolswapError("finetune needs CONVERTED, --data DIR and -o RUN_DIR (or --resume RUN_DIR)")
        run_dir = Path(args.output)
        command = {"converted": str(args.converted), "data": str(args.data), "teacher": args.teacher,
                   "teacher_weights": args.teacher_weights}
        values = {field: getattr(args, flag) for flag, field in _CONFIG_FLAGS.items()}
        config = FinetuneConfig(**values, data_config=data_overrides(args))
    if not command["converted"] or not Path(command["converted"]).is_file():
        raise PoolswapError(f"converted model {command['converted']} does not exist; make one with `poolswap convert`")
    train_dir = split_dir(command["data"], "train")
    val_dir = split_dir(command["data"], "val", required=False)
    if val_dir is not None and val_dir.resolve() == train_dir.resolve():
        val_dir = None

    model = load_model(command["converted"])
    teacher = load_model(command["teacher"], command.get("teacher_weights")) if command.get("teacher") else None
    finetune(
        model, teacher=teacher, train_data=train_dir, val_data=val_dir, config=config, run_dir=run_dir,
        resume=bool(args.resume), overwrite=args.overwrite,
        extra_args={"command": command}, progress=not args.no_progress,
    )
    if int(os.environ.get("RANK", "0")) == 0:
        logger.info("run directory %s: last and best checkpoints, summary.csv", run_dir)
    return 0
