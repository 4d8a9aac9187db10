"""One decoder for every reader: any Pillow mode at its real bit depth, the model's channel count, bad files named."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
from PIL import Image

from poolswap.cli import main
from poolswap.deploy.images import find_images, load_image
from poolswap.data.preprocess import Preprocessing
from poolswap.errors import PoolswapError
from poolswap.image_files import BadImageError, decode_image, to_model_mode
from poolswap.data.datasets import image_dataset, resolve_data_config, split_dir


def _mid_gray(mode: str) -> Image.Image:
    """A 4x4 image of mode ``mode`` whose every pixel means 50% gray (white for mode 1)."""
    if mode == "1":
        return Image.new("1", (4, 4), 1)
    if mode == "P":
        image = Image.new("P", (4, 4), 7)
        image.putpalette([0, 0, 0] * 7 + [128, 128, 128] + [0, 0, 0] * 248)
        return image
    if mode == "PA":
        return _mid_gray("P").convert("PA")
    values = {"L": 128, "LA": (128, 255), "RGB": (128,) * 3, "RGBA": (128, 128, 128, 255), "CMYK": (0, 0, 0, 127),
              "YCbCr": (128, 128, 128), "I": 32896, "I;16": 32896, "I;16B": 32896, "F": 128 / 255}
    if mode in ("I;16", "I;16B"):
        return Image.fromarray(np.full((4, 4), values[mode], np.uint16)).convert(mode) if mode == "I;16" else \
            Image.frombytes(mode, (4, 4), np.full((4, 4), values[mode], ">u2").tobytes())
    return Image.new(mode, (4, 4), values[mode])


MODES = ["1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK", "YCbCr", "I", "I;16", "I;16B", "F"]


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_reaches_the_model_at_its_real_bit_depth(mode):
    image = _mid_gray(mode)
    assert image.mode == mode
    expected = 255 if mode == "1" else 128
    rgb = np.asarray(to_model_mode(image, 3))
    gray = np.asarray(to_model_mode(image, 1))
    assert rgb.shape == (4, 4, 3) and gray.shape == (4, 4)
    assert np.abs(rgb.astype(int) - expected).max() <= 1, (mode, rgb[0, 0])
    assert np.abs(gray.astype(int) - expected).max() <= 1, (mode, gray[0, 0])


@pytest.fixture
def gradient_pngs(tmp_path):
    """The same gradient as an 8-bit and a 16-bit grayscale PNG, in a class folder."""
    folder = tmp_path / "data" / "cls"
    folder.mkdir(parents=True)
    a8 = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (64, 1))
    Image.fromarray(a8).save(folder / "a8.png")
    Image.fromarray(a8.astype(np.uint16) * 257).save(folder / "b16.png")
    assert Image.open(folder / "b16.png").mode.startswith("I")
    return folder


def test_a_16_bit_png_reads_like_its_8_bit_twin_in_every_reader(gradient_pngs):
    a8, b16 = gradient_pngs / "a8.png", gradient_pngs / "b16.png"
    assert np.array_equal(np.asarray(decode_image(b16)), np.asarray(decode_image(a8)))
    np.testing.assert_array_equal(load_image(b16, (32, 32)), load_image(a8, (32, 32)))  # predict / validate
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3))
    config = resolve_data_config(model, overrides={"input_size": (3, 32, 32)})
    from poolswap.data.datasets import build_transform

    dataset = image_dataset(gradient_pngs.parent, build_transform(config))  # eval / finetune
    torch.testing.assert_close(dataset[0][0], dataset[1][0], rtol=0, atol=0)
    assert dataset[0][0].mean() < 1.0  # not the near-white a clipping convert gives


def test_a_one_channel_model_gets_one_channel(gradient_pngs):
    from poolswap.demo.model import digits_cnn
    from poolswap.data.datasets import build_transform

    model = digits_cnn()
    config = resolve_data_config(model, overrides={})
    assert config["input_size"][0] == 1 and len(config["mean"]) == len(config["std"]) == 1
    dataset = image_dataset(gradient_pngs.parent, build_transform(config), channels=config["input_size"][0])
    assert dataset[0][0].shape[0] == 1
    assert model(dataset[0][0].unsqueeze(0)).shape == (1, 10)
    gray = Preprocessing(input_size=(1, 16, 16), mean=(0.5,), std=(0.5,))
    assert load_image(gradient_pngs / "b16.png", gray).shape == (1, 16, 16)


@pytest.fixture
def folder_with_a_truncated_image(tmp_path):
    folder = tmp_path / "data" / "n01440764"  # an ImageNet class: the 1000-way head of the eval test maps it
    folder.mkdir(parents=True)
    for name in ("a.png", "b.png"):
        Image.new("RGB", (24, 24), (10, 200, 30)).save(folder / name)
    data = (folder / "b.png").read_bytes()
    (folder / "b.png").write_bytes(data[: len(data) // 2])
    return folder.parent


@pytest.mark.parametrize("workers", [0, 1])
def test_a_truncated_image_is_one_line_naming_the_file(folder_with_a_truncated_image, workers):
    dataset = image_dataset(folder_with_a_truncated_image, lambda image: torch.zeros(1))
    batches = iter(torch.utils.data.DataLoader(dataset, batch_size=2, num_workers=workers))
    with pytest.raises(BadImageError) as info:  # from a worker, torch re-raises it with its traceback as the message
        next(batches)
    if workers:
        batches._shutdown_workers()  # now: left to the garbage collector, the worker's exit waits 5 s
    message = str(info.value)
    assert "\n" not in message and "b.png" in message and "--skip-bad-images" in message, message


def test_skip_bad_images_drops_them_with_one_warning(folder_with_a_truncated_image, caplog):
    with caplog.at_level(logging.WARNING, logger="poolswap"):
        dataset = image_dataset(folder_with_a_truncated_image, skip_bad_images=True)
    assert [p.rsplit("/", 1)[-1] for p, _ in dataset.samples] == ["a.png"] and dataset.targets == [0]
    assert "skipping 1 of 2 images" in caplog.text and "b.png" in caplog.text


@pytest.mark.parametrize("side", [12, 20])  # past Pillow's warning limit, past its error limit
def test_a_decompression_bomb_is_refused_naming_the_file(tmp_path, monkeypatch, side):
    path = tmp_path / "bomb.png"
    Image.new("L", (side, side)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(BadImageError, match="bomb.png is refused as a decompression bomb"):
        decode_image(path)


def test_a_file_given_as_a_data_folder_says_so(tmp_path):
    path = tmp_path / "image.png"
    Image.new("RGB", (4, 4)).save(path)
    for call in (lambda: split_dir(path, "train"), lambda: find_images(path), lambda: image_dataset(path)):
        with pytest.raises(PoolswapError, match="is a file; give the folder"):
            call()


def test_eval_stops_at_a_bad_image_or_skips_it_on_request(folder_with_a_truncated_image, capsys):
    argv = ["eval", "torchvision:squeezenet1_0", "--data", str(folder_with_a_truncated_image), "--device", "cpu",
            "--input-size", "3,64,64", "--json"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "b.png" in err, err
    assert main([*argv, "--skip-bad-images"]) == 0
    assert json.loads(capsys.readouterr().out)["samples"] == 1


@pytest.mark.parametrize("command", ["eval", "finetune", "predict", "validate"])
def test_every_command_that_reads_images_takes_skip_bad_images(command):
    from poolswap.cli import build_parser

    positional = {"eval": ["timm:resnet18"], "finetune": ["m.safetensors"], "predict": ["m.onnx", "a.png"],
                  "validate": ["m.onnx"]}[command]
    args = build_parser().parse_args([command, *positional, "--skip-bad-images"])
    assert args.skip_bad_images is True
    if command == "finetune":
        from poolswap.options import from_args
        from poolswap.train import FinetuneConfig

        assert from_args(FinetuneConfig, args).skip_bad_images is True
