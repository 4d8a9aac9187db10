"""The pipeline as a file: ``poolswap run RECIPE.yaml`` (convert, fine-tune, export, validate)."""

from .recipe import STAGES, Recipe, check_recipe, load_recipe, run_recipe

__all__ = ["Recipe", "STAGES", "check_recipe", "load_recipe", "run_recipe"]
