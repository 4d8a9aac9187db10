"""Outputs: never over an input, never over an existing file without --overwrite, never half-written."""

from __future__ import annotations

import os

import pytest
import torch

from poolswap._atomic import atomic_write_text
from poolswap.cli import main
from poolswap.model import create_model

SPEC = "torchvision:squeezenet1_0"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ck") / "squeeze.pth"
    torch.save(create_model(SPEC, num_classes=3).state_dict(), path)
    return path


def _convert(checkpoint, out, *extra):
    return main(["convert", SPEC, "--checkpoint", str(checkpoint), "-o", str(out), "--input-size", "3,32,32", *extra])


def test_convert_never_writes_over_its_input(tmp_path, checkpoint, capsys):
    same = tmp_path / "model.safetensors"
    converted = tmp_path / "first.safetensors"
    assert _convert(checkpoint, converted) == 0
    same.write_bytes(converted.read_bytes())
    before = same.read_bytes()
    # a converted file used as the checkpoint of another conversion, with -o naming that same file
    assert main(["convert", SPEC, "--checkpoint", str(same), "-o", str(same), "--input-size", "3,32,32",
                 "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert "never writes over its input" in err and err.count("\n") == 1
    assert same.read_bytes() == before


def test_an_existing_output_needs_overwrite(tmp_path, checkpoint, capsys):
    out = tmp_path / "sq.safetensors"
    out.write_bytes(b"precious")
    assert _convert(checkpoint, out) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert out.read_bytes() == b"precious"
    assert _convert(checkpoint, out, "--overwrite") == 0
    assert out.read_bytes() != b"precious"


def test_bench_refuses_an_existing_json_before_timing_anything(tmp_path, capsys):
    out = tmp_path / "bench.json"
    out.write_text("{}")
    assert main(["bench", "op", "--json", str(out)]) == 2
    assert "--json" in capsys.readouterr().err and out.read_text() == "{}"


def test_an_os_error_while_writing_is_one_line_and_leaves_nothing(tmp_path, checkpoint, capsys):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    assert _convert(checkpoint, not_a_folder / "sq.safetensors") == 2
    err = capsys.readouterr().err
    assert err.startswith("poolswap: error: ") and err.count("\n") == 1 and str(not_a_folder) in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_a_killed_writer_leaves_no_orphan_for_the_next_run(tmp_path):
    target = tmp_path / "last.pt"
    dead = tmp_path / f".{target.name}.999999999.abc123.tmp"  # a pid no process has
    dead.write_text("half")
    alive = tmp_path / f".{target.name}.{os.getpid()}.def456.tmp"  # this process: another write in flight
    alive.write_text("in flight")
    atomic_write_text(target, "done")
    assert target.read_text() == "done"
    assert not dead.exists() and alive.exists()
