"""``poolswap finetune``: distil a converted model from its original, resumably, on one or many processes."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from ...errors import PoolswapError
from ...options import add_options, from_args
from ..arguments import add_data_arguments, add_trust_argument, data_overrides

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
    from ...train.config import FinetuneConfig

    parser.add_argument("converted", metavar="CONVERTED", nargs="?",
                        help="converted model file from `poolswap convert` (not needed with --resume)")
    parser.add_argument("-o", "--output", metavar="RUN_DIR", help="run directory: args.yaml, summary.csv, checkpoints")
    parser.add_argument("--teacher", metavar="MODEL",
                        help="teacher: a model file or a spec such as timm:NAME (default: CONVERTED's original)")
    parser.add_argument("--teacher-weights", metavar="FILE", help="checkpoint for a --teacher spec (default: none)")
    add_trust_argument(parser)
    groups = {"data": add_data_arguments(parser)}
    # batch size, workers, device and --skip-bad-images are shared data flags (add_data_arguments) that fill
    # FinetuneConfig too
    add_options(parser, FinetuneConfig, skip=("batch_size", "workers", "device", "skip_bad_images"), groups=groups)
    run_group = groups["run"]
    run_group.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR exactly where it stopped")
    run_group.add_argument("--overwrite", action="store_true", help="replace a run already in RUN_DIR (default: refuse)")
    run_group.add_argument("--no-progress", action="store_true", help="no progress bar or progress lines")


def _same_file(a: str, b: str) -> bool:
    """Whether two paths name the same file, or files with the same bytes (a converted model moved or copied)."""
    import filecmp

    pa, pb = Path(a), Path(b)
    if pa.resolve() == pb.resolve():
        return True
    return pa.is_file() and pb.is_file() and filecmp.cmp(pa, pb, shallow=False)


def _check_same_inputs(args: argparse.Namespace, command: dict, run_dir: Path) -> None:
    """A resumed run continues with its own model, data and teacher: naming others is refused in one line."""
    if args.converted and command.get("converted") and not _same_file(args.converted, command["converted"]):
        raise PoolswapError(f"{run_dir} fine-tunes {command['converted']}, not {args.converted}: resume it without "
                            "CONVERTED, or start a new run with -o NEW_DIR")
    if args.data and command.get("data") and Path(args.data).resolve() != Path(command["data"]).resolve():
        raise PoolswapError(f"{run_dir} trains on {command['data']}, not {args.data}: resume it without --data, or "
                            "start a new run with -o NEW_DIR")
    for flag, key in (("--teacher", "teacher"), ("--teacher-weights", "teacher_weights")):
        value = getattr(args, key)
        if value is not None and value != command.get(key):
            raise PoolswapError(f"{run_dir} was run with {flag} {command.get(key)}, not {value}: resume it without "
                                f"{flag}, or start a new run with -o NEW_DIR")


def run(args: argparse.Namespace) -> int:
    from ...train.config import FinetuneConfig
    from ...model import check_file_spec, parse_spec
    from ...surgery import load_model
    from ...train import finetune
    from ...data.datasets import split_dir
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
        _check_same_inputs(args, command, run_dir)
        # the flags given now on top of the run's settings: the run refuses those it cannot change (all but
        # --epochs, --workers, --device, --log-every, --checkpoint-every), see check_resumed_config
        given = from_args(FinetuneConfig, args, data_config=data_overrides(args)).to_dict()
        defaults = FinetuneConfig().to_dict()
        changed = {k: v for k, v in given.items() if v != defaults[k]}
        config = FinetuneConfig.from_dict({**saved["config"], **changed, "workers": args.workers,
                                           "device": args.device})
    else:
        if not args.converted or not args.data or not args.output:
            raise PoolswapError("finetune needs CONVERTED, --data DIR and -o RUN_DIR (or --resume RUN_DIR)")
        run_dir = Path(args.output)
        command = {"converted": str(args.converted), "data": str(args.data), "teacher": args.teacher,
                   "teacher_weights": args.teacher_weights}
        config = from_args(FinetuneConfig, args, data_config=data_overrides(args))
    if not command["converted"] or not Path(command["converted"]).is_file():
        raise PoolswapError(f"converted model {command['converted']} does not exist; make one with `poolswap convert`")
    train_dir = split_dir(command["data"], "train")
    val_dir = split_dir(command["data"], "val", required=False)
    if val_dir is not None and val_dir.resolve() == train_dir.resolve():
        val_dir = None

    model = load_model(command["converted"], trust_module=args.trust_module)
    teacher = None
    if command.get("teacher"):
        if args.resume and not Path(command["teacher"]).exists():
            # a teacher spec read back from the run directory's args.yaml is a file's spec, checked as one
            check_file_spec(parse_spec(command["teacher"]).to_dict(), args.trust_module,
                            what=f"the teacher in {run_dir / 'args.yaml'}")
        teacher = load_model(command["teacher"], command.get("teacher_weights"), trust_module=args.trust_module)
    finetune(
        model, teacher=teacher, train_data=train_dir, val_data=val_dir, config=config, run_dir=run_dir,
        resume=bool(args.resume), overwrite=args.overwrite,
        extra_args={"command": command}, progress=not args.no_progress,
    )
    if int(os.environ.get("RANK", "0")) == 0:
        logger.info("run directory %s: last and best checkpoints, summary.csv", run_dir)
    return 0
