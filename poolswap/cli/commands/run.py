"""``poolswap run RECIPE.yaml``: the declarative pipeline (convert, fine-tune, export, validate)."""

from __future__ import annotations

import argparse

from ..arguments import add_trust_argument

NAME = "run"
HELP = "run a recipe file: convert, fine-tune, export, validate into one run directory (done stages skipped)"
ORDER = 8


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", metavar="RECIPE.yaml", help="the recipe (see examples/recipe.yaml)")
    parser.add_argument("--force", action="store_true", help="redo every stage (default: skip the stages done)")
    parser.add_argument("--check", action="store_true", help="validate the recipe and stop (default: run it)")
    add_trust_argument(parser)


def run(args: argparse.Namespace) -> int:
    from ...pipeline import load_recipe, run_recipe

    recipe = load_recipe(args.recipe, trust_module=args.trust_module)
    if args.check:
        print(f"{args.recipe}: ok; run directory {recipe.run_dir}")
        return 0
    run_recipe(recipe, force=args.force, on_stage=lambda name, status: print(f"{name:<9} {status}"))
    print(f"run directory {recipe.run_dir}")
    return 0
