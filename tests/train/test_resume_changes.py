"""``finetune --resume`` with something different: another model is refused, changed settings are applied or
refused in one line, more epochs continue a finished run."""

from __future__ import annotations

import csv

import pytest
import torch
import yaml

import poolswap
from poolswap.cli import main
from poolswap.model import create_model
from poolswap.surgery import save
from poolswap.surgery import convert

TRUST = ["--trust-module", "tests.train.helpers"]
FLAGS = ["--input-size", "16,16", "--crop-pct", "1", "--batch-size", "4", "--max-steps", "1", "--no-progress",
         "--device", "cpu"]


@pytest.fixture
def finished_run(converted, data_dir, tmp_path):
    path, _, _ = converted
    run = tmp_path / "run"
    assert main(["finetune", *TRUST, str(path), "--data", str(data_dir), "-o", str(run), *FLAGS]) == 0
    return path, run


def _rows(run) -> list[dict]:
    return list(csv.DictReader((run / "summary.csv").open()))


def test_resume_with_another_model_is_refused(finished_run, tmp_path, capsys):
    path, run = finished_run
    torch.manual_seed(1)
    other = save(convert(create_model("tests.train.helpers:TinyNet"), learn_beta=True), tmp_path / "other.safetensors")
    kept = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    assert main(["finetune", *TRUST, str(other), "--resume", str(run), "--epochs", "2"]) == 2
    err = capsys.readouterr().err
    assert "not " + str(other) in err and "-o NEW_DIR" in err and len(err.strip().splitlines()) == 1
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == kept
    # the same file named again (or a byte-identical copy) is the same model
    copy = tmp_path / "copy.safetensors"
    copy.write_bytes(path.read_bytes())
    assert main(["finetune", *TRUST, str(copy), "--resume", str(run)]) == 0


@pytest.mark.parametrize("flag,value,words", [
    ("--lr", "0.05", "was run with --lr 1e-05; a resumed run cannot change it to 0.05"),
    ("--alpha", "0.5", "was run with --alpha 1"),
    ("--crop-pct", "0.5", "data_config"),
])
def test_a_setting_a_run_cannot_change_is_refused_in_one_line(finished_run, capsys, flag, value, words):
    _, run = finished_run
    before = _rows(run)
    assert main(["finetune", *TRUST, "--resume", str(run), flag, value]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and "--epochs" in err and len(err.splitlines()) == 1
    assert _rows(run) == before


def test_more_epochs_continue_a_finished_run(finished_run, capsys):
    _, run = finished_run
    assert [r["epoch"] for r in _rows(run)] == ["1"]
    assert main(["finetune", *TRUST, "--resume", str(run), "--epochs", "3"]) == 0
    assert [r["epoch"] for r in _rows(run)] == ["1", "2", "3"]
    assert yaml.safe_load((run / "args.yaml").read_text())["config"]["epochs"] == 3
    # the schedule was stretched over 3 epochs: the second epoch did not train at the first run's final lr (0)
    assert float(_rows(run)[1]["lr"]) > 0
    # a plain resume now finds the longer run finished; fewer epochs than done is refused
    assert main(["finetune", *TRUST, "--resume", str(run)]) == 0
    assert len(_rows(run)) == 3
    assert main(["finetune", *TRUST, "--resume", str(run), "--epochs", "2"]) == 2
    assert "has finished 3 epoch(s) already" in capsys.readouterr().err
    assert poolswap.load(run / "last.safetensors", trust_module="tests.train.helpers") is not None


def test_a_teacher_spec_read_back_from_the_run_directory_is_checked_like_a_files(finished_run, capsys):
    """args.yaml is a file: a teacher spec planted there does not run without --trust-module."""
    _, run = finished_run
    args = yaml.safe_load((run / "args.yaml").read_text())
    args["command"]["teacher"] = "subprocess:getoutput"
    (run / "args.yaml").write_text(yaml.safe_dump(args))
    assert main(["finetune", *TRUST, "--resume", str(run)]) == 2
    err = capsys.readouterr().err
    assert "the teacher in" in err and "--trust-module subprocess" in err
