"""Input checkpoints, model specs, and the converted-model file (save / load in a fresh process)."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

import poolswap
from poolswap.errors import PoolswapError
from poolswap.model import build_from_checkpoint, create_model, infer_kwargs, load_state_dict_file, parse_spec
from poolswap.surgery import read_header

ROOT = Path(__file__).resolve().parents[2]
# The small models with functional pools the surgery tests define, importable by name for the spec tests.
SURGERY_MODELS = Path(__file__).resolve().parents[1] / "surgery"
if str(SURGERY_MODELS) not in sys.path:
    sys.path.insert(0, str(SURGERY_MODELS))


@pytest.fixture(scope="module")
def resnet18_7():
    torch.manual_seed(0)
    return create_model("torchvision:resnet18", num_classes=7).eval()


@pytest.mark.parametrize("wrap", [None, "state_dict", "model", "state_dict_ema"])
@pytest.mark.parametrize("suffix", [".pth", ".pth.tar"])
def test_torch_checkpoints_in_every_layout(tmp_path, resnet18_7, wrap, suffix):
    state = resnet18_7.state_dict()
    if wrap == "model":
        state = {f"module.{k}": v for k, v in state.items()}  # DataParallel prefix is stripped
    obj = state if wrap is None else {wrap: state, "epoch": 3}
    path = tmp_path / f"ck{suffix}"
    torch.save(obj, path)
    loaded = load_state_dict_file(path)
    assert list(loaded) == list(resnet18_7.state_dict())


def test_safetensors_checkpoint_and_num_classes_inference(tmp_path, resnet18_7):
    from safetensors.torch import save_file

    path = tmp_path / "ck.safetensors"
    save_file({k: v.contiguous() for k, v in resnet18_7.state_dict().items()}, str(path))
    model = build_from_checkpoint("torchvision:resnet18", path)
    assert model.fc.out_features == 7
    x = torch.randn(1, 3, 32, 32)
    torch.testing.assert_close(model(x), resnet18_7(x))


def test_timm_in_chans_and_num_classes_inference():
    state = create_model("timm:resnet18", num_classes=3, in_chans=1).state_dict()
    assert infer_kwargs(parse_spec("timm:resnet18"), state) == {"num_classes": 3, "in_chans": 1}


def test_pickled_objects_are_refused(tmp_path):
    import argparse

    path = tmp_path / "evil.pth"
    torch.save({"state_dict": argparse.Namespace(payload=1)}, path)  # any non-weights object
    with pytest.raises(PoolswapError, match="weights-only") as err:
        load_state_dict_file(path)
    message = str(err.value)
    assert "\n" not in message and "argparse.Namespace" in message and "state_dict()" in message
    assert "weights_only=False" not in message  # torch's advice would run the file's code


@pytest.mark.parametrize("content", [b"garbage", b""])
def test_a_file_that_is_no_checkpoint_is_named_in_one_line(tmp_path, content):
    path = tmp_path / "broken.pth"
    path.write_bytes(content)
    with pytest.raises(PoolswapError, match="broken.pth") as err:
        load_state_dict_file(path)
    assert "\n" not in str(err.value) and "weights_only=False" not in str(err.value)


def test_checkpoint_that_does_not_fit_is_one_line(tmp_path, resnet18_7):
    path = tmp_path / "ck.pth"
    torch.save(resnet18_7.state_dict(), path)
    with pytest.raises(PoolswapError) as err:
        build_from_checkpoint("torchvision:resnet34", path)
    message = str(err.value)
    assert "\n" not in message and "missing" in message and "layer1.2" in message
    state = resnet18_7.state_dict()
    state["conv1.weight"] = torch.zeros(64, 3, 5, 5)
    state["extra.bias"] = torch.zeros(1)
    torch.save(state, path)
    with pytest.raises(PoolswapError, match=r"unexpected: extra.bias.*shape mismatch: conv1.weight"):
        build_from_checkpoint("torchvision:resnet18", path)


def test_unknown_names_suggest_close_matches():
    with pytest.raises(PoolswapError, match="did you mean.*resnet18"):
        create_model("timm:resnet_18")
    with pytest.raises(PoolswapError, match="did you mean.*resnet50"):
        create_model("torchvision:resnet05")
    with pytest.raises(PoolswapError, match="did you mean.*resnet18"):
        create_model("torchvision.models:resnet81")
    with pytest.raises(PoolswapError, match="not a spec"):
        parse_spec("resnet18")


def _run_fresh(code: str, tmp_path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SURGERY_MODELS), str(ROOT)]))
    return subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, cwd=ROOT, env=env)


def test_save_load_python_factory_in_a_fresh_process(tmp_path):
    torch.manual_seed(0)
    model = create_model("_surgery_models:functional_net", num_classes=3).eval()
    converted = poolswap.convert(model, example_input=torch.randn(1, 3, 16, 16), learn_beta="channel", beta=3.0)
    with torch.no_grad():
        converted.get_submodule("block.avg_pool2d").log_beta.copy_(torch.linspace(-1, 1, 8))
    path = tmp_path / "fn.safetensors"
    poolswap.save(converted, path)
    assert read_header(path)["spec"]["name"] == "_surgery_models:functional_net"
    x = torch.rand(2, 3, 16, 16)
    torch.save(x, tmp_path / "x.pt")
    with torch.no_grad():
        torch.save(converted(x), tmp_path / "y.pt")
    code = (
        "import torch, poolswap, sys; d = sys.argv[1]; m = poolswap.load(d + '/fn.safetensors', trust_module='_surgery_models');"
        "torch.testing.assert_close(m(torch.load(d + '/x.pt')), torch.load(d + '/y.pt'));"
        "print(type(m).__name__, sorted(k for k in m.state_dict() if 'log_beta' in k))"
    )
    out = _run_fresh(code, tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split(" ", 1) == ["FunctionalNet", "['block.avg_pool2d.log_beta', 'max_pool2d.log_beta']\n"]


@pytest.mark.slow
def test_save_load_in_a_fresh_process(tmp_path):
    torch.manual_seed(0)
    model = create_model("torchvision:inception_v3", init_weights=False, num_classes=10).eval()
    converted = poolswap.convert(model, example_input=torch.randn(1, 3, 96, 96), learn_beta="scalar", beta=2.0)
    with torch.no_grad():
        converted.get_submodule("Mixed_5b.avg_pool2d").log_beta.fill_(0.25)
    converted.get_submodule("maxpool1").initial_beta = 1.0  # a learnt site keeps its log_beta
    path = tmp_path / "inc.safetensors"
    poolswap.save(converted, path)
    header = read_header(path)
    assert header["spec"] == {"source": "torchvision", "name": "inception_v3",
                              "kwargs": {"init_weights": False, "num_classes": 10}}
    assert sum(s["action"] == "swap" for s in header["manifest"]["sites"]) == 12  # Mixed_7b/7c: 1x1 maps at 96x96
    x = torch.rand(1, 3, 96, 96)
    torch.save(x, tmp_path / "x.pt")
    with torch.no_grad():
        torch.save(converted(x), tmp_path / "y.pt")
    code = (
        "import torch, poolswap, sys; d = sys.argv[1]; m = poolswap.load(d + '/inc.safetensors');"
        "x = torch.load(d + '/x.pt'); y = torch.load(d + '/y.pt');"
        "torch.testing.assert_close(m(x), y); print(type(m).__name__, m.poolswap_manifest['format'])"
    )
    out = _run_fresh(code, tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["Inception3", "poolswap.manifest/1"]


def test_save_fixed_betas_set_after_conversion(tmp_path):
    model = create_model("torchvision:squeezenet1_0").eval()
    converted = poolswap.convert(model, example_input=torch.randn(1, 3, 64, 64))
    converted.features[2].initial_beta = 7.5  # e.g. set by calibration
    path = tmp_path / "sq.safetensors"
    poolswap.save(converted, path)
    again = poolswap.load(path)
    assert again.features[2].initial_beta == 7.5 and again.features[6].initial_beta == 1.0
    assert list(again.state_dict()) == list(model.state_dict())


def test_save_needs_a_spec_and_writes_nothing_on_failure(tmp_path):
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1), torch.nn.MaxPool2d(2))
    converted = poolswap.convert(model, example_input=torch.randn(1, 3, 4, 4))
    with pytest.raises(PoolswapError, match="spec="):
        poolswap.save(converted, tmp_path / "x.safetensors")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(PoolswapError, match="not a poolswap model file"):
        from safetensors.torch import save_file

        save_file({"a": torch.zeros(1)}, str(tmp_path / "plain.safetensors"))
        poolswap.load(tmp_path / "plain.safetensors")


def test_torchvision_init_notices_stay_out_of_the_output():
    """GoogLeNet's FutureWarning about its random init is noise for a tool that loads weights over it."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        parse_spec("torchvision:googlenet", {"aux_logits": False, "num_classes": 3}).build()
    assert not [w for w in caught if "weight initialization" in str(w.message)]
