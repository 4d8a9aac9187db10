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

__all__ = ["Recipe", "load_recipe", "run_recipe", "STAGES"]

logger = logging.getLogger(__name__)

STAGES = ("convert", "finetune", "export", "validate")
_NUMBER = (int, float)
_STR_LIST = "list of strings"


def _is(value: Any, kind: Any) -> bool:
    if kind == _STR_LIST:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if kind == "ints":
        return isinstance(value, list) and bool(value) and all(_is(v, int) for v in value)
    if isinstance(value, bool):  # YAML's true/false only where a boolean is meant
        return kind is bool or (isinstance(kind, tuple) and bool in kind)
    return isinstance(value, kind)


def _kind_name(kind: Any) -> str:
    names = {str: "a string", bool: "true or false", int: "an integer", dict: "a mapping", _NUMBER: "a number",
             "ints": "a list of integers", _STR_LIST: "a list of strings", (bool, str): "true, false or a string"}
    return names.get(kind, str(kind))


# key -> (type, required)
TOP = {"model": (str, True), "checkpoint": (str, False), "model_kwargs": (dict, False), "input_size": ("ints", True),
       "run_dir": (str, False), "convert": (dict, False), "finetune": (dict, False), "export": (dict, False),
       "validate": (dict, False)}
CONVERT = {"kinds": (_STR_LIST, False), "include": (_STR_LIST, False), "exclude": (_STR_LIST, False),
           "beta": (_NUMBER, False), "learn_beta": ((bool, str), False), "strict": (bool, False)}
EXPORT = {"body": (str, False), "opset": (int, False), "dynamic_batch": (bool, False)}
VALIDATE = {"n": (int, False), "atol": (_NUMBER, False), "rtol": (_NUMBER, False), "data": (str, False),
            "min_top1": (_NUMBER, False), "strict": (bool, False)}


def _check(section: dict, schema: dict, where: str) -> None:
    for key in section:
        if key not in schema:
            raise PoolswapError(f"recipe: unknown key '{where}{key}' (known: {', '.join(schema)})")
    for key, (kind, required) in schema.items():
        if key not in section:
            if required:
                raise PoolswapError(f"recipe: missing key '{where}{key}'")
            continue
        if not _is(section[key], kind):
            raise PoolswapError(f"recipe: '{where}{key}' must be {_kind_name(kind)}, got {section[key]!r}")


@dataclasses.dataclass
class Recipe:
    """A validated recipe: paths resolved against the recipe's folder."""

    data: dict
    base: Path

    def path(self, value: str) -> Path:
        p = Path(os.path.expanduser(value))
        return p if p.is_absolute() else self.base / p

    @property
    def run_dir(self) -> Path:
        return self.path(self.data.get("run_dir", "runs/" + Path(self.data["model"].split(":")[-1]).name))


def check_recipe(data: Any, base: Union[str, os.PathLike] = ".") -> Recipe:
    """Validate a recipe mapping (unknown keys, wrong types, bad stage settings) before anything runs."""
    from ..train import FinetuneConfig

    if not isinstance(data, dict):
        raise PoolswapError("recipe: the file must hold a mapping (model:, checkpoint:, stages...)")
    _check(data, TOP, "")
    for name, schema in (("convert", CONVERT), ("export", EXPORT), ("validate", VALIDATE)):
        _check(data.get(name) or {}, schema, f"{name}.")
    body = (data.get("export") or {}).get("body", "exact")
    if body not in ("fast", "exact"):
        raise PoolswapError(f"recipe: 'export.body' must be fast or exact, got {body!r}")
    finetune = data.get("finetune")
    if finetune is not None:
        fields = {f.name for f in dataclasses.fields(FinetuneConfig)}
        for key in finetune:
            if key != "data" and key not in fields:
                raise PoolswapError(f"recipe: unknown key 'finetune.{key}' (known: data, {', '.join(sorted(fields))})")
        if not isinstance(finetune.get("data"), str):
            raise PoolswapError("recipe: 'finetune.data' must be a string: an ImageFolder root with train/ (and val/)")
        try:
            FinetuneConfig(**{k: v for k, v in finetune.items() if k != "data"})
        except PoolswapError as exc:
            raise PoolswapError(f"recipe: finetune.{exc}") from None
        except TypeError as exc:
            raise PoolswapError(f"recipe: finetune: {exc}") from None
    return Recipe(data=data, base=Path(base))


def load_recipe(path: Union[str, os.PathLike]) -> Recipe:
    """Read and validate a recipe file (YAML)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no recipe at {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise PoolswapError(f"recipe {path} is not valid YAML: {first_line(exc)}") from None
    return check_recipe(data, path.resolve().parent)


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
    input_size = tuple(data["input_size"])

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
    convert_cfg = dict(data.get("convert") or {})
    checkpoint = recipe.path(data["checkpoint"]) if data.get("checkpoint") else None
    if checkpoint is not None and not checkpoint.is_file():
        raise FileNotFoundError(f"recipe checkpoint {checkpoint} does not exist")

    def do_convert() -> dict:
        import torch

        model = build_from_checkpoint(data["model"], checkpoint, model_kwargs=data.get("model_kwargs"))
        example = torch.randn(1, *input_size)
        report = poolswap.inspect(model, example)
        out = poolswap.convert(model, example_input=example, report=report, **convert_cfg)
        poolswap.save(out, converted)
        return {"swapped": [s.name for s in report if s.action == "swap"], "sites": len(report)}

    stage("convert", [data["model"], data.get("model_kwargs"), convert_cfg, list(input_size)],
          checkpoint or Path(data["model"]), [converted], do_convert)
    current = converted

    # finetune
    if data.get("finetune") is not None:
        ft = dict(data["finetune"])
        folder = recipe.path(ft.pop("data"))
        finetuned = run_dir / "finetuned.safetensors"

        def do_finetune() -> dict:
            from ..train import FinetuneConfig, finetune
            from ..train.data import split_dir

            model = poolswap.load(converted)
            val = split_dir(folder, "val", required=False)
            result = finetune(model, train_data=split_dir(folder, "train"), val_data=val,
                              config=FinetuneConfig(**ft), run_dir=run_dir / "finetune", overwrite=True, progress=False)
            poolswap.save(result.model, finetuned)
            return {"history": result.history}

        stage("finetune", [ft, str(folder)], current, [finetuned], do_finetune)
        current = finetuned

    # export
    onnx_path = run_dir / "model.onnx"
    if data.get("export") is not None or data.get("validate") is not None:
        ex = {"body": "exact", **(data.get("export") or {})}

        def do_export() -> dict:
            model = poolswap.load(current)
            poolswap.export_onnx(model, onnx_path, input_size=input_size, **ex)
            return {"file": onnx_path.name}

        stage("export", ex, current, [onnx_path], do_export)

    # validate
    if data.get("validate") is not None:
        va = dict(data["validate"])

        def do_validate() -> dict:
            from ..export import validate

            inputs = None
            if va.get("data"):
                from ..deploy.images import find_images, load_images

                inputs = load_images(find_images(recipe.path(va["data"]), limit=va.get("n", 8)), input_size[1:],
                                     input_size[0])
            report = validate(onnx_path, poolswap.load(current), inputs, n=va.get("n", 8), atol=va.get("atol", 1e-4),
                              rtol=va.get("rtol", 1e-4), min_top1=va.get("min_top1"), strict=va.get("strict", False))
            logger.info("%s", report.format())
            if not report.ok:
                raise PoolswapError(f"validation failed beyond the tolerance; see {record_path}")
            return {"pairs": [dataclasses.asdict(p) for p in report.pairs], "ok": report.ok}

        stage("validate", va, onnx_path, [], do_validate)
    return record
