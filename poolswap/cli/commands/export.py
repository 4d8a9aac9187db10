"""``poolswap export``: a converted checkpoint to ONNX with poolswap::SoftPool nodes."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..._atomic import check_output
from ...errors import PoolswapError
from ...options import add_options, from_args
from ..arguments import add_preprocessing_arguments, add_trust_argument, data_overrides

NAME = "export"
HELP = "export a converted checkpoint to ONNX (one poolswap::SoftPool node per SoftPool, a portable body)"
ORDER = 50

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ...export.config import ExportConfig, ValidateConfig

    parser.add_argument("checkpoint", metavar="CHECKPOINT", help="a model saved by poolswap.save / poolswap convert")
    add_trust_argument(parser)
    groups = {"output": parser.add_argument_group("output")}
    groups["output"].add_argument("-o", "--output", required=True, help="the .onnx file to write")
    groups["output"].add_argument("--overwrite", action="store_true", help="replace an existing output file")
    add_options(parser, ExportConfig, groups=groups)
    groups["output"].add_argument("--class-names", type=Path, default=None,
                                  help="a text file with one class name per line, stored in the model for "
                                       "`poolswap predict`")
    add_preprocessing_arguments(parser.add_argument_group(
        "preprocessing stored in the model (default: the model's data config)"))
    check = parser.add_argument_group("validation")
    check.add_argument("--validate", action="store_true", help="compare PyTorch with every runtime at hand after export")
    add_options(parser, ValidateConfig, groups={"inputs": check, "tolerance": check, "runtime": check})


def _class_names(path: Path | None) -> list[str] | None:
    if path is None:
        return None
    if not path.is_file():
        raise PoolswapError(f"--class-names {path} is not a file; give a text file with one class name per line")
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not names:
        raise PoolswapError(f"--class-names {path} holds no names; give one class name per line")
    return names


def run(args: argparse.Namespace) -> int:
    from ...deploy import validate
    from ...export import export_onnx
    from ...export.config import ExportConfig, ValidateConfig
    from ...surgery import load

    config = from_args(ExportConfig, args)
    check = from_args(ValidateConfig, args)
    overrides = data_overrides(args)
    class_names = _class_names(args.class_names)
    check_output(args.output, overwrite=args.overwrite, inputs=[args.checkpoint])
    model = load(args.checkpoint, trust_module=args.trust_module)
    path = export_onnx(model, args.output, input_size=overrides.pop("input_size", None), class_names=class_names,
                       data_config=overrides, **config.to_kwargs())
    print(f"wrote {path}")
    if not args.validate:
        return 0
    report = validate(path, model, **check.to_kwargs())
    print(report.format())
    if not report.ok:
        raise PoolswapError(f"validation failed beyond the tolerance (atol {check.atol:g}); see the table above")
    return 0
