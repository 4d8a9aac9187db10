"""Data: image folders with and without labels, label maps, the model's preprocessing, the epoch sampler."""

from __future__ import annotations

import pytest
import torch

from tests.train import helpers
from poolswap.errors import PoolswapError
from poolswap.data.datasets import (
    EpochSampler, SeededTransformDataset, build_transform, image_dataset, imagenet_synsets, label_map,
    resolve_data_config, split_dir,
)


class TestImageFolders:
    def test_labelled(self, tmp_path):
        root = helpers.write_image_folder(tmp_path / "d", per_class=2)
        ds = image_dataset(root, build_transform(resolve_data_config(overrides=helpers.DATA_CONFIG)))
        assert ds.classes == ["a", "b", "c"] and len(ds) == 6
        image, label = ds[3]
        assert image.shape == (3, 16, 16) and label == 1

    def test_unlabelled(self, tmp_path):
        root = helpers.write_image_folder(tmp_path / "d", per_class=2, labelled=False)
        ds = image_dataset(root)
        assert len(ds) == 6 and ds[0][1] == -1

    def test_missing_and_empty_folders(self, tmp_path):
        with pytest.raises(PoolswapError, match="does not exist"):
            image_dataset(tmp_path / "nope")
        (tmp_path / "empty" / "cls").mkdir(parents=True)
        with pytest.raises(PoolswapError, match="no images"):
            image_dataset(tmp_path / "empty")
        (tmp_path / "bare").mkdir()
        with pytest.raises(PoolswapError, match="no images"):
            image_dataset(tmp_path / "bare")

    def test_split_dir(self, data_dir, tmp_path):
        assert split_dir(data_dir, "train") == data_dir / "train"
        assert split_dir(data_dir / "train", "train") == data_dir / "train"  # a folder without splits
        (tmp_path / "only_train" / "train").mkdir(parents=True)
        assert split_dir(tmp_path / "only_train", "val", required=False) is None


class TestLabelMap:
    def test_identity_when_counts_match(self):
        assert label_map(["x", "y"], 2) is None

    def test_wordnet_ids_map_to_imagenet_indices(self):
        synsets = imagenet_synsets()
        assert len(synsets) == 1000
        assert label_map([synsets[0], synsets[217], synsets[999]], 1000) == [0, 217, 999]

    def test_mismatch_is_an_error(self):
        with pytest.raises(PoolswapError, match="3 classes but the model's head has 10 outputs"):
            label_map(["a", "b", "c"], 10)


class TestDataConfig:
    def test_torchvision_weights_preprocessing(self):
        config = resolve_data_config(spec="torchvision:resnet18")
        assert config["input_size"] == (3, 224, 224)
        assert config["crop_pct"] == pytest.approx(224 / 256)
        assert config["interpolation"] == "bilinear"

    def test_overrides_win(self):
        config = resolve_data_config(spec="torchvision:resnet18", overrides={"input_size": 32, "crop_pct": 1.0})
        assert config["input_size"] == (3, 32, 32) and config["crop_pct"] == 1.0

    def test_timm_model_config(self):
        import timm

        model = timm.create_model("resnet18", pretrained=False)
        config = resolve_data_config(model)
        assert config["input_size"] == (3, 224, 224) and config["interpolation"] == "bicubic"


class TestEpochSampler:
    def test_depends_only_on_seed_and_epoch(self):
        a = EpochSampler(10, batch_size=3, seed=1)
        b = EpochSampler(10, batch_size=3, seed=1)
        a.set_epoch(2)
        b.set_epoch(2)
        assert list(a) == list(b)
        b.set_epoch(3)
        assert list(a) != list(b)
        assert sorted(a) == list(range(10))

    def test_start_step_skips_whole_batches(self):
        s = EpochSampler(10, batch_size=3, seed=0)
        full = list(s)
        s.set_epoch(0, start_step=2)
        assert list(s) == full[6:] and len(s) == 4

    def test_ranks_share_the_epoch(self):
        shards = []
        for rank in range(2):
            s = EpochSampler(7, batch_size=2, seed=0, rank=rank, world_size=2)
            s.set_epoch(1)
            shards.append(list(s))
        assert len(shards[0]) == len(shards[1]) == 4
        assert set(shards[0]) | set(shards[1]) == set(range(7))

    def test_seeded_transforms_leave_the_global_rng_alone(self, tmp_path):
        root = helpers.write_image_folder(tmp_path / "d", per_class=2)
        config = resolve_data_config(overrides=helpers.DATA_CONFIG)
        ds = SeededTransformDataset(image_dataset(root, build_transform(config, train=True, hflip=True)), seed=3)
        state = torch.get_rng_state()
        first = ds[1][0]
        assert torch.equal(torch.get_rng_state(), state)
        assert torch.equal(ds[1][0], first)

    def test_random_crops_are_seeded_per_sample_and_sized_for_the_model(self, tmp_path):
        root = helpers.write_image_folder(tmp_path / "d", per_class=2)
        config = resolve_data_config(overrides=helpers.DATA_CONFIG)
        transform = build_transform(config, train=True, hflip=True, random_crop=True)
        ds = SeededTransformDataset(image_dataset(root, transform), seed=3)
        first = ds[1][0]
        assert first.shape == tuple(config["input_size"]) and torch.equal(ds[1][0], first)
        ds.set_epoch(1)
        assert not torch.equal(ds[1][0], first)  # another epoch, another crop
        plain = image_dataset(root, build_transform(config, train=True))[1][0]
        assert not torch.equal(plain, first)


class TestSampleBatches:
    def test_tensor_dataset_folder_and_loader(self, tmp_path):
        from torch.utils.data import DataLoader, TensorDataset

        from poolswap.data.datasets import sample_batches

        x = torch.arange(10.0).view(10, 1, 1, 1)
        assert [b.flatten().tolist() for b in sample_batches(x, num_batches=2, batch_size=3)] == [[0, 1, 2], [3, 4, 5]]
        # A Dataset: evenly spaced items, so a folder sorted by class shows every class.
        dataset = TensorDataset(x, torch.zeros(10))
        assert [b.flatten().tolist() for b in sample_batches(dataset, num_batches=1, batch_size=5)] == [[0, 2, 4, 6, 8]]
        loader = DataLoader(dataset, batch_size=4)
        assert [len(b) for b in sample_batches(loader, num_batches=2, batch_size=99)] == [4, 4]
        root = helpers.write_image_folder(tmp_path / "images", per_class=2)
        batches = sample_batches(root, num_batches=1, batch_size=4, data_config=helpers.DATA_CONFIG)
        assert [tuple(b.shape) for b in batches] == [(4, 3, helpers.IMAGE_SIZE, helpers.IMAGE_SIZE)]
        with pytest.raises(PoolswapError, match="no images"):
            sample_batches(x[:0], num_batches=1)
