"""benchmarks/fair_study.py: balanced subsets, the fair-baseline verdicts, untouched originals, a tiny real run."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def study():
    spec = importlib.util.spec_from_file_location("fair_study", ROOT / "benchmarks" / "fair_study.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_class_balanced_indices_take_evenly_spaced_images_of_every_class(study):
    targets = [0] * 10 + [1] * 4 + [2] * 6
    chosen = study.class_balanced_indices(targets, 6)
    assert [targets[i] for i in chosen] == [0, 0, 1, 1, 2, 2]
    assert chosen[:2] == [0, 5] and chosen[2:4] == [10, 12]
    assert study.class_balanced_indices(targets, None) == list(range(20))
    with pytest.raises(study.PoolswapError, match="fewer than"):
        study.class_balanced_indices(targets, 15)
    with pytest.raises(study.PoolswapError, match="no image per class"):
        study.class_balanced_indices(targets, 2)


def _unit(top1: float, predictions: list[int]) -> dict:
    return {"top1_all": top1, "top1_classes": top1, "agreement": 1.0, "predictions": predictions, "betas": [],
            "seconds": 1.0}


def test_summary_calls_a_difference_only_when_the_seed_ranges_do_not_overlap(study):
    rows = [study.ROWS_BY_NAME[name] for name in ("original", "original+ft", "b1+ft", "b1+scalar+ft")]
    units = {
        "original/-": _unit(0.5, [0, 0, 0, 0]),
        "original+ft/0": _unit(0.60, [0, 0, 0, 0]), "original+ft/1": _unit(0.62, [0, 0, 0, 1]),
        "b1+ft/0": _unit(0.61, [0, 0, 1, 1]), "b1+ft/1": _unit(0.64, [0, 0, 0, 1]),
        "b1+scalar+ft/0": _unit(0.55, [1, 1, 1, 1]), "b1+scalar+ft/1": _unit(0.58, [1, 1, 1, 1]),
    }
    by_row = {s["row"]: s for s in study.summarise(units, rows)}
    assert "vs_baseline" not in by_row["original"] and "vs_baseline" not in by_row["original+ft"]
    within, lower = by_row["b1+ft"]["vs_baseline"], by_row["b1+scalar+ft"]["vs_baseline"]
    assert within["top1_classes"]["verdict"] == "within spread"
    assert within["top1_classes"]["difference"] == pytest.approx(0.625 - 0.61)
    assert lower["top1_classes"]["verdict"] == "lower"
    # agreement with the baseline pairs runs of the same seed: seed 0 agrees on 2 of 4, seed 1 on 4 of 4
    assert by_row["b1+ft"]["agreement_with_baseline"]["mean"] == pytest.approx(0.75)
    assert by_row["b1+ft"]["top1_classes"]["min"] == 0.61 and by_row["b1+ft"]["seeds"] == 2
    table = study.markdown(study.summarise(units, rows), {"title": "t", "notes": [], "num_classes": 10,
                                                           "num_outputs": 10})
    assert "(lower)" in table and "(within spread)" in table


def test_finetune_copy_leaves_the_callers_models_as_they_were(study):
    from poolswap.demo.model import digits_cnn

    torch.manual_seed(0)
    original = digits_cnn(num_classes=10, in_chans=3, width=4).eval()
    data = study.CachedImages(torch.randn(8, 3, 16, 16), torch.arange(8) % 10, [str(i) for i in range(10)],
                              [f"{i}.jpg" for i in range(8)])
    student = study.convert(original, study.ROWS_BY_NAME["b1+scalar+ft"], "small-cnn", data.images[:2])
    before = {k: v.clone() for k, v in original.state_dict().items()}
    student_before = {k: v.clone() for k, v in student.state_dict().items()}
    args = type("Args", (), dict(epochs=1, batch_size=4, lr=1e-2, beta_lr=1e-1, alpha=0.5, temperature=2.0,
                                 weight_decay=0.0, warmup_steps=0))()
    tuned = study.finetune_copy(student, original, data, args, seed=0)
    assert all(p.requires_grad for p in original.parameters())
    assert all(torch.equal(before[k], v) for k, v in original.state_dict().items())
    assert all(torch.equal(student_before[k], v) for k, v in student.state_dict().items())
    assert not torch.equal(tuned.state_dict()["pool1.log_beta"], student_before["pool1.log_beta"])


def test_tiny_small_cnn_study_writes_its_table_and_resumes(study, shared_data, tmp_path, monkeypatch):
    argv = ["--setting", "small-cnn", "--data", str(shared_data), "--out", str(tmp_path), "--train-limit", "10",
            "--val-limit", "10", "--size", "32", "--width", "8", "--pretrain-epochs", "1", "--batch-size", "10",
            "--calibrate", "1", "--seeds", "0", "--threads", "2", "--rows", "b1", "calibrated", "b1+channel+ft"]
    assert study.main(argv) == 0
    result = json.loads((tmp_path / "fair_study_small-cnn.json").read_text())
    assert set(result["units"]) == {"original/-", "original+ft/0", "b1/-", "calibrated/-", "b1+channel+ft/0"}
    assert result["units"]["original/-"]["agreement"] == 1.0
    assert result["meta"]["val_images"] == 10 and result["meta"]["train_images"] == 10
    assert len(result["meta"]["calibration"]["betas"]) == 3  # max, avg and max pools swapped; the head's kept
    assert result["units"]["calibrated/-"]["betas"] == result["meta"]["calibration"]["betas"]
    rows = {s["row"]: s for s in result["summary"]}
    assert rows["b1+channel+ft"]["vs_baseline"]["top1_classes"]["verdict"] == "one seed"  # no spread to judge by
    table = (tmp_path / "fair_study_small-cnn.md").read_text()
    assert "| original, fine-tuned (fair baseline) | 1 |" in table

    # a rerun with the same settings measures nothing again
    monkeypatch.setattr(study, "finetune_copy", lambda *a, **k: pytest.fail("a finished unit was fine-tuned again"))
    assert study.main(argv) == 0
    assert json.loads((tmp_path / "fair_study_small-cnn.json").read_text())["units"] == result["units"]

    # units measured elsewhere (another process, another machine) merge into the table without measuring
    other = tmp_path / "other.json"
    other.write_text((tmp_path / "fair_study_small-cnn.json").read_text())
    partial = dict(result, units={k: v for k, v in result["units"].items() if not k.startswith("b1+channel")})
    (tmp_path / "fair_study_small-cnn.json").write_text(json.dumps(partial))
    assert study.main([*argv, "--report-only", "--merge", str(other)]) == 0
    merged = json.loads((tmp_path / "fair_study_small-cnn.json").read_text())
    assert merged["units"] == result["units"]
    assert "learnt per-channel β, fine-tuned | 1 |" in (tmp_path / "fair_study_small-cnn.md").read_text()
