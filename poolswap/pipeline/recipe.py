"""``poolswap run RECIPE.yaml``: the pipeline as a file, validated before anything runs.

A recipe names the model and its checkpoint, then optional stage sections:
``convert`` (always runs), ``finetune``, ``export`` and ``validate``. Every
stage writes into one run directory; ``stages.json`` there records each
finished stage with a fingerprint of its settings and input, so running the
recipe again skips the stages already done and redoes those whose settings
(or upstream outputs) changed. Relative paths are relative to the recipe file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Callable, Optional, Union

from .._atomic import atomic_write_text
from ..errors import PoolswapError, first_line
from ..input_size import check_input_size
from ..options import from_mapping

__all__ = ["Recipe", "load_recipe", "run_recipe", "STAGES"]

logger = logging.getLogger(__name__)

STAGES = ("convert", "finetune", "export", "validate")

#: The recipe's own keys: (what it must be, required). The stage sections are checked by their configs.
TOP = {"model": (str, True), "checkpoint": (str, False), "model_kwargs": (dict, False),
       "input_size": (list, True), "run_dir": (str, False), "convert": (dict, False), "finetune": (dict, False),
       "export": (dict, False), "validate": (dict, False)}
_KIND_NAMES = {str: "a string", dict: "a mapping", list: "a list of integers"}


@dataclasses.dataclass
class Recipe:
    """A validated recipe: its settings as stage configs, paths resolved against the recipe's folder."""

    data: dict
    base: Path
    input_size: tuple[int, ...] = ()
    convert: Any = None
    convert_data: Optional[Path] = None
    finetune: Any = None
    finetune_data: Optional[Path] = None
    export: Any = None
    validate: Any = None
    validate_data: Optional[Path] = None
    trust_module: tuple[str, ...] = ()  # modules whose package.module:factory specs the user trusts

    def path(self, value: str) -> Path:
        p = Path(os.path.expanduser(value))
        return p if p.is_absolute() else self.base / p

    @property
    def checkpoint(self) -> Optional[Path]:
        return self.path(self.data["checkpoint"]) if self.data.get("checkpoint") else None

    @property
    def run_dir(self) -> Path:
        return self.path(self.data.get("run_dir", "runs/" + Path(self.data["model"].split(":")[-1]).name))


def _check_top(data: dict) -> None:
    for key in data:
        if key not in TOP:
            raise PoolswapError(f"recipe: unknown key '{key}' (known: {', '.join(TOP)})")
    for key, (kind, required) in TOP.items():
        if key not in data or data[key] is None:
            if required:
                raise PoolswapError(f"recipe: missing key '{key}'")
            continue
        if not isinstance(data[key], kind):
            raise PoolswapError(f"recipe: '{key}' must be {_KIND_NAMES[kind]}, got {data[key]!r}")


def _folder(recipe: Recipe, section: dict, where: str, required: bool) -> Optional[Path]:
    """The section's ``data`` folder, taken out of the stage's settings (its existence is checked last)."""
    value = section.pop("data", None)
    if value is None:
        if required:
            raise PoolswapError(f"recipe: '{where}.data' is missing: an ImageFolder root with train/ (and val/)")
        return None
    if not isinstance(value, str):
        raise PoolswapError(f"recipe: '{where}.data' must be a string (a folder), got {value!r}")
    return recipe.path(value)


def check_recipe(data: Any, base: Union[str, os.PathLike] = ".", *, trust_module: Any = None) -> Recipe:
    """Validate a whole recipe before anything runs: keys, types, every stage's settings, files and folders.

    A recipe is a file, so its model spec may name only what a model file may (see
    :mod:`poolswap.model.trust`): a ``package.module:factory`` outside poolswap needs ``trust_module``.
    """
    from ..model import check_file_spec, parse_spec, trusted_modules
    from ..export.config import ExportConfig, ValidateConfig
    from ..surgery.config import ConvertConfig
    from ..train import FinetuneConfig

    if not isinstance(data, dict):
        raise PoolswapError("recipe: the file must hold a mapping (model:, checkpoint:, stages...)")
    _check_top(data)
    size = data["input_size"]
    if len(size) != 3 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size):
        raise PoolswapError(f"recipe: 'input_size' must be three positive integers [C, H, W], got {size!r}")
    check_input_size(size, "recipe: 'input_size'")
    trusted = tuple(sorted(trusted_modules(trust_module)))
    check_file_spec(parse_spec(data["model"], data.get("model_kwargs")).to_dict(), trusted, what="recipe: 'model'")
    recipe = Recipe(data=data, base=Path(base), input_size=tuple(size), trust_module=trusted)
    section = dict(data.get("convert") or {})
    recipe.convert_data = _folder(recipe, section, "convert", required=False)
    recipe.convert = from_mapping(ConvertConfig, section, "convert")
    if (recipe.convert_data is None) != (recipe.convert.min_agreement is None):
        raise PoolswapError("recipe: 'convert.min_agreement' and 'convert.data' go together (images to measure "
                            "agreement with the original on)")
    if data.get("finetune") is not None:
        section = dict(data["finetune"])
        recipe.finetune_data = _folder(recipe, section, "finetune", required=True)
        recipe.finetune = from_mapping(FinetuneConfig, section, "finetune")
    if data.get("export") is not None or data.get("validate") is not None:
        recipe.export = from_mapping(ExportConfig, data.get("export"), "export")
    if data.get("validate") is not None:
        section = dict(data["validate"])
        recipe.validate_data = _folder(recipe, section, "validate", required=False)
        recipe.validate = from_mapping(ValidateConfig, section, "validate")
    # the files and folders last: a recipe with a typo should say so before it says a path is missing
    if recipe.checkpoint is not None and not recipe.checkpoint.is_file():
        what = "is a folder, not a file" if recipe.checkpoint.exists() else "does not exist"
        raise PoolswapError(f"recipe: 'checkpoint' {recipe.checkpoint} {what}")
    for where, folder in (("convert", recipe.convert_data), ("finetune", recipe.finetune_data),
                          ("validate", recipe.validate_data)):
        if folder is not None and not folder.is_dir():
            what = "is a file, not a folder" if folder.exists() else "does not exist"
            raise PoolswapError(f"recipe: '{where}.data' {folder} {what}; give a folder of images")
    return recipe


def load_recipe(path: Union[str, os.PathLike], *, trust_module: Any = None) -> Recipe:
    """Read and validate a recipe file (YAML); ``trust_module`` as for :func:`poolswap.load`."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no recipe at {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise PoolswapError(f"recipe {path} is not valid YAML: {first_line(exc)}") from None
    return check_recipe(data, path.resolve().parent, trust_module=trust_module)


def _fingerprint(*parts: Any) -> str:
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _file_id(path: Path) -> list:
    stat = path.stat()
    return [path.name, stat.st_size, stat.st_mtime_ns]


def run_recipe(recipe: Recipe, *, force: bool = False, on_stage: Optional[Callable[[str, str], None]] = None) -> dict:
    """Run the recipe's stages into its run directory; returns ``stages.json``'s content.

    A stage is skipped when ``stages.json`` records it with the same fingerprint
    and its outputs exist (``force`` redoes every stage). ``on_stage(name, status)``
    is told ``"done"`` or ``"skipped"`` for each stage.
    """
    import poolswap
    from ..model import build_from_checkpoint

    data = recipe.data
    run_dir = recipe.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    record_path = run_dir / "stages.json"
    record = {} if force or not record_path.is_file() else json.loads(record_path.read_text(encoding="utf-8"))
    input_size = recipe.input_size

    def stage(name: str, settings: Any, upstream: Path, outputs: list[Path], work: Callable[[], Any]) -> None:
        key = _fingerprint(settings, _file_id(upstream) if upstream.is_file() else str(upstream))
        done = record.get(name)
        if done and done.get("fingerprint") == key and all(p.exists() for p in outputs):
            logger.info("stage %s: done before, skipped", name)
            if on_stage:
                on_stage(name, "skipped")
            return
        result = work()
        record[name] = {"fingerprint": key, "outputs": [p.name for p in outputs], "result": result}
        atomic_write_text(record_path, json.dumps(record, indent=2) + "\n")
        if on_stage:
            on_stage(name, "done")

    # convert
    converted = run_dir / "converted.safetensors"
    checkpoint = recipe.checkpoint

    def do_convert() -> dict:
        import torch

        model = build_from_checkpoint(data["model"], checkpoint, model_kwargs=data.get("model_kwargs"))
        example = torch.randn(1, *input_size)
        report = poolswap.inspect(model, example)
        targeted = {"data": recipe.convert_data} if recipe.convert_data is not None else {}
        out = poolswap.convert(model, example_input=example, report=report, **recipe.convert.to_kwargs(), **targeted)
        poolswap.save(out, converted)
        return {"swapped": [s.name for s in report if s.action == "swap"], "sites": len(report)}

    stage("convert", [data["model"], data.get("model_kwargs"), dataclasses.asdict(recipe.convert), list(input_size),
                      str(recipe.convert_data)],
          checkpoint or Path(data["model"]), [converted], do_convert)
    current = converted

    # finetune
    if recipe.finetune is not None:
        folder = recipe.finetune_data
        finetuned = run_dir / "finetuned.safetensors"

        def do_finetune() -> dict:
            from ..train import finetune
            from ..data.datasets import split_dir

            model = poolswap.load(converted, trust_module=recipe.trust_module)
            val = split_dir(folder, "val", required=False)
            result = finetune(model, train_data=split_dir(folder, "train"), val_data=val, config=recipe.finetune,
                              run_dir=run_dir / "finetune", overwrite=True, progress=False)
            poolswap.save(result.model, finetuned)
            return {"history": result.history}

        stage("finetune", [recipe.finetune.to_dict(), str(folder)], current, [finetuned], do_finetune)
        current = finetuned

    # export
    onnx_path = run_dir / "model.onnx"
    if recipe.export is not None:
        def do_export() -> dict:
            model = poolswap.load(current, trust_module=recipe.trust_module)
            poolswap.export_onnx(model, onnx_path, input_size=input_size, **recipe.export.to_kwargs())
            return {"file": onnx_path.name}

        stage("export", recipe.export.to_kwargs(), current, [onnx_path], do_export)

    # validate
    if recipe.validate is not None:
        settings = recipe.validate

        def do_validate() -> dict:
            from ..deploy import validate

            inputs = None
            if recipe.validate_data is not None:
                from ..deploy.images import images_for_model

                inputs = images_for_model(onnx_path, recipe.validate_data, settings.n)
            report = validate(onnx_path, poolswap.load(current, trust_module=recipe.trust_module), inputs, **settings.to_kwargs())
            logger.info("%s", report.format())
            if not report.ok:
                raise PoolswapError(f"validation failed beyond the tolerance; see {record_path}")
            return {"pairs": [dataclasses.asdict(p) for p in report.pairs], "ok": report.ok}

        stage("validate", [settings.to_kwargs(), str(recipe.validate_data)], onnx_path, [], do_validate)
    return record
