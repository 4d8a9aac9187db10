"""Per-site sensitivity (``inspect --data``) and accuracy-targeted convert (``convert --min-agreement``)."""

from __future__ import annotations

import json

import pytest
import torch

import poolswap
from poolswap.cli import main
from poolswap.demo.model import digits_cnn
from poolswap.errors import PoolswapError
from poolswap.surgery import read_header
from poolswap.ops import softpool_modules
from poolswap.surgery import convert, inspect
from tests.surgery._agreement_models import hurtful_net

SPEC = "tests.surgery._agreement_models:hurtful_net"
BATCHES = dict(num_batches=2, batch_size=16)


def _agreement(a, b, x) -> float:
    with torch.no_grad():
        return float((a.eval()(x).argmax(1) == b.eval()(x).argmax(1)).float().mean())


@pytest.fixture(scope="module")
def hurtful():
    torch.manual_seed(0)
    return hurtful_net().eval(), torch.randn(32, 3, 16, 16)


@pytest.fixture(scope="module")
def demo():
    torch.manual_seed(0)
    return digits_cnn().eval(), torch.randn(32, 1, 16, 16)


def test_sensitivity_of_the_demo_network(demo):
    model, x = demo
    state = {k: v.clone() for k, v in model.state_dict().items()}
    report = inspect(model, data=x, beta=2.0, **BATCHES)
    assert sorted(report.sensitivity) == ["pool1", "pool2", "pool3"]  # not the global head pool
    for name, m in report.sensitivity.items():
        # Measured independently: that site alone swapped at beta 2.
        alone = convert(model, include=[name], beta=2.0)
        assert m.agreement == _agreement(alone, model, x) and m.samples == 32
        assert m.calibrated_kl <= m.kl  # the starting beta is a candidate: calibration never fits worse
    # The model is left as it was.
    assert not softpool_modules(model) and all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    sites = {s["name"]: s for s in report.to_dict()["sites"]}
    assert sites["pool1"]["sensitivity"]["beta"] == 2.0 and "sensitivity" not in sites["head_pool"]
    assert "agree@beta=2" in report.table()


def test_sensitivity_finds_the_harmful_site(hurtful):
    model, x = hurtful
    m = inspect(model, data=x, **BATCHES).sensitivity
    assert m["pool1"].calibrated_agreement == 1.0
    assert m["pool2"].calibrated_agreement < 0.8


def test_targeted_convert_keeps_the_harmful_site(hurtful, tmp_path):
    model, x = hurtful
    converted = convert(model, data=x, min_agreement=0.95, **BATCHES)
    assert list(softpool_modules(converted)) == ["pool1"]
    assert isinstance(converted.pool2, torch.nn.AvgPool2d)
    assert _agreement(converted, model, x) >= 0.95
    data = converted.poolswap_manifest
    sites = {s["name"]: s for s in data["sites"]}
    assert sites["pool2"]["action"] == "skip" and "kept as avg pooling" in sites["pool2"]["reason"]
    assert "the most harmful of 2" in sites["pool2"]["reason"]
    assert sites["pool1"]["beta"] == 128.0 and sites["pool1"]["harm_rank"] == 2
    assert data["agreement"]["kept"] == ["pool2"] and data["agreement"]["target"] == 0.95
    assert data["agreement"]["all_swapped"] < 0.95 <= data["agreement"]["reached"]
    assert data["config"]["min_agreement"] == 0.95
    # The calibrated beta travels with the file.
    path = poolswap.save(converted, tmp_path / "c.safetensors", spec=SPEC)
    again = poolswap.load(path, trust_module=SPEC.partition(":")[0])
    torch.testing.assert_close(again(x), converted(x), rtol=0, atol=0)


def test_targeted_convert_is_deterministic(hurtful):
    model, x = hurtful
    a = convert(model, data=x, min_agreement=0.95, **BATCHES).poolswap_manifest
    b = convert(model, data=x, min_agreement=0.95, **BATCHES).poolswap_manifest
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def test_targeted_convert_of_the_demo_network_swaps_every_site(demo):
    model, x = demo
    converted = convert(model, data=x, min_agreement=0.99, **BATCHES)
    assert sorted(softpool_modules(converted)) == ["pool1", "pool2", "pool3"]
    assert converted.poolswap_manifest["agreement"]["kept"] == []
    assert _agreement(converted, model, x) >= 0.99


def test_an_unreachable_target_names_the_best(hurtful):
    model, x = hurtful
    with pytest.raises(PoolswapError, match=r"out of reach on these 32 images: the best with a site swapped is 0\.\d{4}"):
        convert(model, data=x, min_agreement=0.95, exclude=["pool1"], **BATCHES)


@pytest.mark.parametrize("kwargs, message", [
    (dict(min_agreement=1.5), r"a number in \(0, 1\]"),
    (dict(min_agreement=0.9), "min_agreement needs data"),
    (dict(data="somewhere"), "pass min_agreement too"),
])
def test_bad_target_arguments(hurtful, kwargs, message):
    with pytest.raises(PoolswapError, match=message):
        convert(hurtful[0], **kwargs)


@pytest.fixture(scope="module")
def hurtful_files(tmp_path_factory):
    from tests.train import helpers

    root = tmp_path_factory.mktemp("agreement")
    torch.manual_seed(0)
    torch.save(hurtful_net().state_dict(), root / "hurtful.pth")
    helpers.write_image_folder(root / "images", classes=("a", "b", "c", "d"), per_class=8)
    return root


def test_cli_inspect_and_convert_with_data(hurtful_files, capsys):
    ck, images = hurtful_files / "hurtful.pth", hurtful_files / "images"
    common = [SPEC, "--checkpoint", str(ck), "--data", str(images), "--input-size", "3,16,16", "--batch-size", "16"]
    assert main(["inspect", *common, "--json"]) == 0
    sites = {s["name"]: s for s in json.loads(capsys.readouterr().out)["sites"]}
    assert sites["pool2"]["sensitivity"]["calibrated_agreement"] < sites["pool1"]["sensitivity"]["calibrated_agreement"]
    assert sites["pool1"]["sensitivity"]["samples"] == 32
    out = hurtful_files / "c.safetensors"
    assert main(["convert", *common, "--min-agreement", "0.95", "-o", str(out)]) == 0
    assert "kept 1: pool2" in capsys.readouterr().out
    manifest = read_header(out)["manifest"]
    assert [s["name"] for s in manifest["sites"] if s["action"] == "swap"] == ["pool1"]
    assert manifest["agreement"]["kept"] == ["pool2"]


def test_cli_min_agreement_needs_data(hurtful_files, capsys):
    assert main(["convert", SPEC, "--checkpoint", str(hurtful_files / "hurtful.pth"), "--min-agreement", "0.9",
                 "--dry-run"]) == 2
    assert "--min-agreement and --data go together" in capsys.readouterr().err
