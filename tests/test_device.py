"""A device that does not exist here is a one-line error, from the API and from every command."""

from __future__ import annotations

import pytest
import torch

from poolswap.cli import main
from poolswap.device import resolve_device
from poolswap.errors import PoolswapError


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


@pytest.mark.parametrize("name", ["cuda", "cuda:0", torch.device("cuda")], ids=["name", "index", "device"])
def test_cuda_without_a_gpu_is_a_one_line_error(no_gpu, name):
    with pytest.raises(PoolswapError, match="cpu") as info:
        resolve_device(name)
    assert "\n" not in str(info.value) and "cuda" in str(info.value)


def test_auto_falls_back_to_the_cpu_and_bad_names_are_named(no_gpu):
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device(None) == torch.device("cpu")
    with pytest.raises(PoolswapError, match="unknown device 'gpu'"):
        resolve_device("gpu")


def test_a_cuda_index_beyond_the_machines_gpus_is_named(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda", local_rank=3) == torch.device("cuda", 1)
    with pytest.raises(PoolswapError, match="has 2 CUDA device"):
        resolve_device("cuda:2")


@pytest.mark.parametrize("argv", [
    ["bench", "op", "--device", "cuda"],
    ["eval", "torchvision:squeezenet1_0", "--data", "{data}", "--device", "cuda"],
], ids=["bench", "eval"])
def test_commands_asked_for_cuda_without_a_gpu_exit_with_one_line(no_gpu, tmp_path, capsys, argv):
    from PIL import Image

    (tmp_path / "cls").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "cls" / "a.png")
    code = main([a.replace("{data}", str(tmp_path)) for a in argv])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "no CUDA GPU" in err, err


def test_the_api_refuses_cuda_without_a_gpu_before_running(no_gpu):
    from poolswap.train import evaluate

    with pytest.raises(PoolswapError, match="cuda"):
        evaluate(torch.nn.Linear(2, 2), [], device="cuda")
