"""Stage settings as dataclasses: one definition gives the CLI flags, the recipe schema and the checks.

A stage's config (``ConvertConfig``, ``FinetuneConfig``, ``ExportConfig``,
``ValidateConfig``) declares each setting once with :func:`option`: its
default, its help text and, where argparse needs more than the type, its flag
or choices. From that one declaration:

- :func:`add_options` adds the command-line flags (``--kebab-case`` names),
- :func:`from_args` builds the config from parsed arguments,
- :func:`from_mapping` checks a recipe section (unknown keys, types) and builds it,

and the config's ``__post_init__`` checks the values with the helpers below,
raising :class:`OptionError`, which names the flag on the command line and the
key in a recipe.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import typing
from typing import Any, Iterable, Optional, Sequence

from .errors import PoolswapError

__all__ = [
    "OptionError", "option", "add_options", "from_args", "from_mapping", "flag_of",
    "check_int", "check_number", "check_choice", "check_fraction", "check_agreement", "AGREEMENT_RANGE",
]


class OptionError(PoolswapError):
    """A setting with a bad value: ``field`` and the ``requirement`` it breaks (``"must be ..."``)."""

    def __init__(self, field: str, requirement: str) -> None:
        super().__init__(f"{field} {requirement}")
        self.field = field
        self.requirement = requirement


def option(default: Any = dataclasses.MISSING, help: str = "", *, flag: Optional[str] = None,
           off_flag: Optional[str] = None, const: Any = None, choices: Optional[Sequence[Any]] = None, metavar: Optional[str] = None,
           group: Optional[str] = None, cli: bool = True, default_factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field with what its flag needs: help, flag name, choices, argument group.

    ``off_flag`` names the flag that turns a boolean defaulting to True off
    (``--static`` for ``dynamic_batch``); ``const`` makes the flag's value optional
    (``--learn-beta`` alone means ``const``); ``cli=False`` keeps a setting out of the
    command line (recipes and the API still take it).
    """
    metadata = {"help": help, "flag": flag, "off_flag": off_flag, "const": const, "choices": tuple(choices) if choices else None,
                "metavar": metavar, "group": group, "cli": cli}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def flag_of(field: dataclasses.Field) -> str:
    return field.metadata.get("flag") or "--" + field.name.replace("_", "-")


def _fields(config_type: type) -> list[tuple[dataclasses.Field, Any]]:
    hints = typing.get_type_hints(config_type)
    return [(f, hints[f.name]) for f in dataclasses.fields(config_type) if f.init]


def _base_type(hint: Any) -> tuple[Any, bool]:
    """(the type inside Optional[...], whether None is allowed)."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) is typing.Union:
        nullable = type(None) in typing.get_args(hint)
        return (args[0] if len(args) == 1 else typing.Union[tuple(args)]), nullable
    return hint, False


def _is_sequence(hint: Any) -> bool:
    return typing.get_origin(hint) in (tuple, list)


def _default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return field.default_factory()  # type: ignore[misc]
    return None


def add_options(parser: argparse.ArgumentParser, config_type: type, *, skip: Iterable[str] = (),
                groups: Optional[dict[str, Any]] = None) -> None:
    """Add one flag per setting of ``config_type`` (defaults and help from its fields).

    ``groups`` maps a field's ``group`` name to an argparse group already made
    (for sharing a group with other flags); missing groups are created.
    """
    groups = {} if groups is None else groups
    skipped = set(skip)
    for field, hint in _fields(config_type):
        meta = field.metadata
        if field.name in skipped or not meta.get("cli", True):
            continue
        target = parser
        if meta.get("group"):
            if meta["group"] not in groups:
                groups[meta["group"]] = parser.add_argument_group(meta["group"])
            target = groups[meta["group"]]
        base, optional = _base_type(hint)
        default = _default(field)
        kwargs: dict[str, Any] = {"dest": field.name, "help": meta.get("help") or None}
        if base is bool:
            if meta.get("off_flag"):
                both = target.add_mutually_exclusive_group()
                both.add_argument(flag_of(field), action="store_true", default=default, **kwargs)
                both.add_argument(meta["off_flag"], dest=field.name, action="store_false", default=argparse.SUPPRESS,
                                  help=f"the opposite of {flag_of(field)}")
            else:
                target.add_argument(flag_of(field), action="store_true", default=default, **kwargs)
            continue
        if _is_sequence(base):
            kwargs.update(nargs="+", action="extend", type=typing.get_args(base)[0])
            kwargs["default"] = None
        else:
            kwargs.update(type=base if base in (int, float, str) else str, default=default)
        if meta.get("const") is not None:
            kwargs.update(nargs="?", const=meta["const"])
        if meta.get("choices"):
            kwargs["choices"] = meta["choices"]
        if meta.get("metavar"):
            kwargs["metavar"] = meta["metavar"]
        target.add_argument(flag_of(field), **kwargs)


def _raise_for_flag(config_type: type, exc: OptionError) -> None:
    flags = {f.name: flag_of(f) for f in dataclasses.fields(config_type)}
    raise PoolswapError(f"{flags.get(exc.field, exc.field)} {exc.requirement}") from None


def from_args(config_type: type, args: argparse.Namespace, **values: Any) -> Any:
    """The config from parsed arguments (fields without a flag keep their defaults, or take ``values``)."""
    for field, hint in _fields(config_type):
        if field.name in values or not hasattr(args, field.name):
            continue
        value = getattr(args, field.name)
        if value is None and _is_sequence(_base_type(hint)[0]) and not _base_type(hint)[1]:
            continue  # an empty extend-list flag keeps the field's default
        values[field.name] = tuple(value) if isinstance(value, list) else value
    try:
        return config_type(**values)
    except OptionError as exc:
        _raise_for_flag(config_type, exc)


def _type_name(hint: Any) -> str:
    base, optional = _base_type(hint)
    if typing.get_origin(base) is typing.Union:
        name = " or ".join(_type_name(a) for a in typing.get_args(base))
    elif _is_sequence(base):
        name = f"a list of {_type_name(typing.get_args(base)[0]).replace('a ', '').replace('an ', '')}s"
    else:
        name = {bool: "true or false", int: "an integer", float: "a number", str: "a string", dict: "a mapping"}.get(
            base, getattr(base, "__name__", str(base)))
    return f"{name} (or null)" if optional else name


def _fits(value: Any, hint: Any) -> bool:
    base, optional = _base_type(hint)
    if value is None:
        return optional
    if typing.get_origin(base) is typing.Union:
        return any(_fits(value, a) for a in typing.get_args(base))
    if _is_sequence(base):
        return isinstance(value, (list, tuple)) and all(_fits(v, typing.get_args(base)[0]) for v in value)
    if isinstance(value, bool):  # YAML's true/false only where a boolean is meant
        return base is bool
    if base is float:
        return isinstance(value, (int, float))
    return isinstance(value, typing.get_origin(base) or base)


def from_mapping(config_type: type, values: Any, where: str) -> Any:
    """The config from a recipe section; unknown keys, wrong types and bad values name ``where.key``."""
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise PoolswapError(f"recipe: '{where}' must be a mapping of settings, got {values!r}")
    fields = dict((f.name, hint) for f, hint in _fields(config_type))
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise PoolswapError(f"recipe: unknown key '{where}.{unknown[0]}' (known: {', '.join(sorted(fields))})")
    for key, value in values.items():
        if not _fits(value, fields[key]):
            raise PoolswapError(f"recipe: '{where}.{key}' must be {_type_name(fields[key])}, got {value!r}")
    converted = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    try:
        return config_type(**converted)
    except OptionError as exc:
        raise PoolswapError(f"recipe: '{where}.{exc.field}' {exc.requirement}") from None


# Checks the configs' __post_init__ use: each raises OptionError naming the field.

def check_int(name: str, value: Any, minimum: int = 1, maximum: Optional[int] = None) -> None:
    ok = not isinstance(value, bool) and isinstance(value, int) and value >= minimum
    if not ok or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise OptionError(name, f"must be an integer {bound}, got {value!r}")


def check_number(name: str, value: Any, *, allow_zero: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        raise OptionError(name, f"must be a finite number {'>=' if allow_zero else '>'} 0, got {value!r}")


def check_fraction(name: str, value: Any) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and 0 <= value <= 1
    if not ok:  # one message for every way out of the range
        raise OptionError(name, f"must be a number in [0, 1], got {value!r}")


#: What a minimum agreement must be, said the same way by every command, config and API that takes one.
AGREEMENT_RANGE = "must be a number in (0, 1], e.g. 0.995"


def agreement_ok(value: Any) -> bool:
    """Whether ``value`` is a minimum agreement: a finite number in (0, 1]."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            and 0 < value <= 1)


def check_agreement(name: str, value: Any) -> None:
    if not agreement_ok(value):
        raise OptionError(name, f"{AGREEMENT_RANGE}, got {value!r}")


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> None:
    if value not in choices:
        raise OptionError(name, f"must be one of {', '.join(map(str, choices))}, got {value!r}")
