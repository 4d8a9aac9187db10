"""``poolswap study``: the split, the verdict rule, resuming after a kill, bad input, a tiny end-to-end study."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.train import helpers
from poolswap.errors import PoolswapError
from poolswap.study import StudyConfig, run_study, split_samples, spread, verdict
from poolswap.study.split import pool_samples

SIZE = {"input_size": (3, 16, 16), "crop_pct": 1.0}
FAST = dict(seeds=(0, 1), variants=("b1",), max_steps=2, batch_size=6, passes=1, latency_time=0.01, calibrate=1,
            lr=1e-3, data_config=SIZE)


def _samples(per_class: dict) -> tuple[list[str], list[tuple[str, int]]]:
    classes = sorted(per_class)
    return classes, [(f"{c}/{i}.png", k) for k, c in enumerate(classes) for i in range(per_class[c])]


class TestSplit:
    def test_disjoint_balanced_and_independent_of_listing_order(self):
        classes, samples = _samples({"a": 10, "b": 20, "c": 5})
        split = split_samples(classes, samples, eval_fraction=0.2)
        train, held = {s[0] for s in split.train}, {s[0] for s in split.eval}
        assert not train & held and train | held == {s[0] for s in samples}
        assert [sum(1 for s in split.eval if s[1] == k) for k in range(3)] == [2, 4, 1]
        again = split_samples(classes, list(reversed(samples)), eval_fraction=0.2)
        assert again.eval == split.eval and again.train == split.train

    def test_limits_spread_over_classes(self):
        classes, samples = _samples({"a": 50, "b": 50})
        split = split_samples(classes, samples, eval_fraction=0.5, max_eval=10, max_train=6)
        assert [sum(1 for s in split.eval if s[1] == k) for k in range(2)] == [5, 5]
        assert [sum(1 for s in split.train if s[1] == k) for k in range(2)] == [3, 3]

    @pytest.mark.parametrize("per_class, message", [({"a": 1, "b": 5}, "too few images to split: a has 1"),
                                                    ({"a": 9}, "one class only")])
    def test_refuses_what_cannot_be_split(self, per_class, message):
        classes, samples = _samples(per_class)
        with pytest.raises(PoolswapError, match=message):
            split_samples(classes, samples, eval_fraction=0.2)

    def test_pools_train_and_val(self, tmp_path):
        helpers.write_image_folder(tmp_path / "train", per_class=2)
        helpers.write_image_folder(tmp_path / "val", per_class=1, seed=1)
        classes, samples = pool_samples(tmp_path)
        assert classes == ["a", "b", "c"] and len(samples) == 9
        assert sum(1 for s in samples if s[0].startswith("val")) == 3


class TestVerdict:
    def test_only_ranges_that_do_not_overlap_are_a_difference(self):
        base = spread([0.60, 0.62, 0.61])
        assert verdict(spread([0.63, 0.64, 0.65]), base) == "higher"
        assert verdict(spread([0.55, 0.56, 0.59]), base) == "lower"
        assert verdict(spread([0.59, 0.65, 0.70]), base) == "within spread"
        assert verdict(spread([0.62, 0.63]), base) == "within spread"  # touching the baseline's max is not beyond it
        stats = spread([1.0, 3.0])
        assert stats["mean"] == 2.0 and stats["min"] == 1.0 and stats["max"] == 3.0 and stats["n"] == 2
        assert spread([0.5])["std"] == 0.0
        # one seed has no spread: no difference is called, however far apart
        assert verdict(spread([0.9]), spread([0.1])) == "one seed"
        assert verdict(spread([0.9, 0.95]), spread([0.1])) == "one seed"


class TestConfig:
    @pytest.mark.parametrize("bad, message", [(dict(seeds=(0, 0)), "must not repeat a seed"),
                                              (dict(seeds=()), "at least one seed"),
                                              (dict(variants=("b2",)), "variants must be one of"),
                                              (dict(eval_fraction=1.0), "between 0 and 1")])
    def test_bad_settings(self, bad, message):
        with pytest.raises(PoolswapError, match=message):
            StudyConfig(**bad)


def _demo(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    helpers.write_image_folder(root, per_class=8)
    return root


def _model():
    from poolswap.model import create_model

    import torch

    torch.manual_seed(0)
    return create_model("poolswap.demo.model:digits_cnn", num_classes=3, in_chans=3, width=8).eval()


class TestStudy:
    def test_tiny_end_to_end_and_resume_after_a_kill(self, tmp_path):
        data, out = _demo(tmp_path), tmp_path / "out"
        config = StudyConfig(**FAST)

        class Killed(Exception):
            pass

        def kill_after_two(key, unit):
            if key == "original/1":
                raise Killed

        with pytest.raises(Killed):
            run_study(_model(), data, out, config, on_unit=kill_after_two)
        saved = json.loads((out / "study.json").read_text())
        assert sorted(saved["units"]) == ["original/0", "original/1"]

        done = []
        result = run_study(_model(), data, out, config, on_unit=lambda key, unit: done.append(key))
        assert done == ["b1/0", "b1/1"]  # the units measured before the kill were not run again
        for key in ("original/0", "original/1"):
            assert result.units[key] == saved["units"][key]
        assert {p.name for p in out.iterdir()} == {"study.json", "study.md", "study.png"}
        by_model = {s["model"]: s for s in result.summary}
        b1 = by_model["b1"]
        for key in ("top1", "agreement", "consistency", "latency_ms"):
            assert b1[key]["n"] == 2 and b1["verdicts"][key]["verdict"] in ("higher", "lower", "within spread")
        assert result.meta["eval_images"] == 6 and result.meta["train_images"] == 18  # 2 of 8 per class held out
        history = result.units["b1/0"]["history"]  # one row per epoch: whether the recipe had converged
        assert [row["epoch"] for row in history] == list(range(1, config.epochs + 1))
        assert all(row["train_loss"] > 0 for row in history)
        table = (out / "study.md").read_text()
        assert "SoftPool β=1" in table and "shift consistency" in table

    def test_other_settings_in_the_folder_are_refused(self, tmp_path):
        data, out = _demo(tmp_path), tmp_path / "out"
        run_study(_model(), data, out, StudyConfig(**{**FAST, "seeds": (0,), "variants": ("b1",)}))
        with pytest.raises(PoolswapError, match="holds a study of other settings"):
            run_study(_model(), data, out, StudyConfig(**{**FAST, "seeds": (0,), "eval_fraction": 0.5}))


@pytest.mark.parametrize("extra, message", [(["--seeds", "1", "1"], "--seeds must not repeat a seed"),
                                            (["--data", "ONECLASS"], "one class only")])
def test_cli_bad_input_is_one_line_and_writes_nothing(tmp_path, extra, message):
    data = tmp_path / "data"
    helpers.write_image_folder(data, per_class=3)
    one = tmp_path / "one"
    helpers.write_image_folder(one, classes=("a",), per_class=4)
    extra = [str(one) if e == "ONECLASS" else e for e in extra]
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "poolswap.cli", "study", "poolswap.demo.model:digits_cnn",
                           "--model-kwargs", '{"num_classes": 3, "in_chans": 3, "width": 8}', "--data", str(data),
                           "-o", str(out), "--input-size", "3,16,16", *extra], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("poolswap: error:")]
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in proc.stderr
    assert not out.exists()


class TestRecipes:
    def test_head_recipe_gives_every_model_the_same_new_head_and_measures_in_the_data_classes(self, tmp_path):
        data, out = _demo(tmp_path), tmp_path / "out"
        helpers.write_image_folder(data, classes=("d",), per_class=8, seed=3)  # 4 classes on a 3-output model
        config = StudyConfig(**{**FAST, "seeds": (0,), "recipe": "head", "augment": "flip", "cache": True})
        result = run_study(_model(), data, out, config)
        for unit in result.units.values():
            assert set(unit["predictions"]) <= {0, 1, 2, 3} and 0 <= unit["top1"] <= 1
            # the folder's classes do not map onto the original's 3 outputs: no agreement with it
            assert "agreement" not in unit
        assert result.meta["agreement"] is False
        assert "agreement with the original" not in (out / "study.md").read_text()

    def test_from_scratch_reports_no_agreement_with_a_random_original(self, tmp_path):
        data, out = _demo(tmp_path), tmp_path / "out"
        config = StudyConfig(**{**FAST, "seeds": (0,), "recipe": "labels", "augment": "crop"})
        result = run_study(_model(), data, out, config, trained=False)
        assert all("agreement" not in u and "top1" in u for u in result.units.values())
        assert "agreement with the original" not in (out / "study.md").read_text()

    def test_head_recipe_needs_class_folders(self, tmp_path):
        data = tmp_path / "flat"
        helpers.write_image_folder(data, per_class=8, labelled=False)
        with pytest.raises(PoolswapError, match="head recipe needs class folders"):
            run_study(_model(), data, tmp_path / "out", StudyConfig(**{**FAST, "recipe": "head"}))
