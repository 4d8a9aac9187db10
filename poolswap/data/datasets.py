"""Training and evaluation data: ImageFolder trees, the model's own preprocessing, label maps, samplers.

* :func:`resolve_data_config` takes the preprocessing from the model (timm's
  ``pretrained_cfg``, or torchvision's weights transforms for a
  ``torchvision:NAME`` spec), with user overrides on top.
* :func:`image_dataset` reads ``DIR`` as an ImageFolder (one folder per class)
  or, with no class folders, as unlabelled images (label -1: pure distillation).
* :func:`label_map` maps folder classes to the model's output indices: the
  identity when the counts match, ImageNet WordNet ids to ImageNet-1k indices
  when the head has 1000 outputs.
* :class:`EpochSampler` gives each epoch a permutation that depends only on
  (seed, epoch), shards it over ranks and can start mid-epoch, which is what
  exact resume and DistributedDataParallel need.
"""

from __future__ import annotations

import math
import os
import zlib
from functools import partial
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence, Union

import torch
from torch.utils.data import Dataset, Sampler

from ..errors import PoolswapError, first_line
from ..image_files import IMAGE_EXTENSIONS, decode_image, readable_images, require_folder

__all__ = [
    "IMAGE_EXTENSIONS",
    "EpochSampler",
    "SeededTransformDataset",
    "UnlabeledImages",
    "build_transform",
    "image_dataset",
    "imagenet_synsets",
    "label_map",
    "resolve_data_config",
    "sample_batches",
    "split_dir",
]

_OVERRIDABLE = ("input_size", "interpolation", "mean", "std", "crop_pct", "crop_mode")


def _torchvision_data_config(spec: Optional[str]) -> dict:
    """The preprocessing of a torchvision model's default weights, as a timm data config."""
    if not spec or not spec.startswith("torchvision:"):
        return {}
    name = spec.split(":", 1)[1].split("(")[0].strip()
    try:
        import torchvision

        weights = torchvision.models.get_model_weights(name)
        preset = list(weights)[0].transforms()
    except Exception:  # an unknown name or a model without weights: fall back to timm's defaults
        return {}
    crop = int(preset.crop_size[0])
    resize = int(preset.resize_size[0]) if getattr(preset, "resize_size", None) else crop
    return {
        "input_size": (3, crop, crop),
        "interpolation": str(preset.interpolation.value),
        "mean": tuple(float(v) for v in preset.mean),
        "std": tuple(float(v) for v in preset.std),
        "crop_pct": crop / resize,
    }


def resolve_data_config(model: Optional[torch.nn.Module] = None, *, spec: Optional[str] = None,
                        overrides: Optional[dict] = None) -> dict:
    """The model's preprocessing (timm data config keys), with ``overrides`` applied last."""
    from timm.data import resolve_data_config as timm_resolve

    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(_OVERRIDABLE))
    if unknown:
        raise PoolswapError(f"unknown data-config keys: {', '.join(unknown)} (known: {', '.join(_OVERRIDABLE)})")
    base = _torchvision_data_config(spec)
    args = {**base, **{k: v for k, v in overrides.items() if v is not None}}
    if isinstance(args.get("input_size"), int):
        args["input_size"] = (3, args["input_size"], args["input_size"])
    config = timm_resolve(args, model=model if not base else None)
    config.update({k: v for k, v in args.items() if k in _OVERRIDABLE})
    channels = model_input_channels(model) if model is not None and "input_size" not in overrides else None
    if channels in (1, 3):
        config["input_size"] = (channels, *tuple(config["input_size"])[1:])
    _fit_normalisation(config)
    return config


def model_input_channels(model: torch.nn.Module) -> Optional[int]:
    """The channels the model's first convolution takes (1 for a grayscale model), or None without one."""
    for module in model.modules():
        if isinstance(module, torch.nn.modules.conv._ConvNd):
            return int(module.in_channels)
    return None


def _fit_normalisation(config: dict) -> None:
    """A 1-channel input of an RGB config gets the averages of its mean and std (one value each)."""
    if int(config["input_size"][0]) != 1:
        return
    for key in ("mean", "std"):
        values = tuple(float(v) for v in config[key])
        config[key] = (sum(values) / len(values),)


def build_transform(data_config: dict, *, train: bool = False, hflip: bool = False, random_crop: bool = False):
    """Evaluation preprocessing of ``data_config``; training adds an optional horizontal flip, and an optional
    random-resized crop (scale 0.35 to 1, the usual from-scratch augmentation) in place of the center crop.

    Distillation wants the teacher and the student to see the same pixels, and a
    resumable run wants the data to be a function of (seed, epoch, index): so the
    random transforms draw from torch's generator, which :class:`SeededTransformDataset`
    seeds per sample.
    """
    from timm.data import create_transform
    from torchvision import transforms

    if train and random_crop:
        _, height, width = (int(v) for v in data_config["input_size"])
        mode = transforms.InterpolationMode(data_config.get("interpolation", "bilinear"))
        steps = [transforms.RandomResizedCrop((height, width), scale=(0.35, 1.0), interpolation=mode)]
        if hflip:
            steps.append(transforms.RandomHorizontalFlip())
        steps += [transforms.ToTensor(), transforms.Normalize(data_config["mean"], data_config["std"])]
        return transforms.Compose(steps)
    keys = ("input_size", "interpolation", "mean", "std", "crop_pct", "crop_mode")
    transform = create_transform(**{k: data_config[k] for k in keys if k in data_config}, is_training=False)
    if train and hflip:
        transform = transforms.Compose([transforms.RandomHorizontalFlip(), transform])
    return transform


def _is_image(path: Union[str, os.PathLike]) -> bool:
    path = Path(path)
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS


class UnlabeledImages(Dataset):
    """Images straight under a folder, without class folders; every label is -1."""

    def __init__(self, root: os.PathLike, transform=None, channels: int = 3) -> None:
        self.root = Path(root)
        self.files = sorted(p for p in self.root.iterdir() if _is_image(p))
        self.transform = transform
        self.channels = channels
        self.classes: list[str] = []

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int):
        image = decode_image(self.files[index], self.channels)
        return (self.transform(image) if self.transform else image), -1


def split_dir(root: os.PathLike, split: str, *, required: bool = True) -> Optional[Path]:
    """``root/split`` when it exists; ``root`` itself for ``train`` when it holds no split folders."""
    root = require_folder(root, "data")
    path = root / split
    if path.is_dir():
        return path
    has_splits = (root / "train").is_dir() or (root / "val").is_dir()
    if not has_splits and required:
        return root
    if required:
        raise PoolswapError(f"data folder {root} has no {split}/ folder")
    return None


def image_dataset(root: os.PathLike, transform=None, *, channels: int = 3, skip_bad_images: bool = False) -> Dataset:
    """An ImageFolder of ``root`` (class folders), or :class:`UnlabeledImages` where it has none.

    Images are decoded by :func:`poolswap.image_files.decode_image` for a ``channels``-channel
    model. A file that cannot be decoded stops the run with a one-line error naming it;
    ``skip_bad_images`` decodes every file first and drops those, with one warning.
    """
    from torchvision.datasets import ImageFolder

    root = require_folder(root, "data")
    class_dirs = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    if class_dirs:
        try:
            dataset = ImageFolder(str(root), transform=transform, loader=partial(decode_image, channels=channels),
                                  is_valid_file=_is_image)
        except FileNotFoundError as exc:
            raise PoolswapError(f"data folder {root} holds no images ({first_line(exc)})") from None
    else:
        dataset = UnlabeledImages(root, transform, channels)
    if len(dataset) == 0:
        raise PoolswapError(f"data folder {root} holds no images (extensions: {', '.join(IMAGE_EXTENSIONS)})")
    if skip_bad_images:
        _drop_unreadable(dataset, channels)
    return dataset


def _drop_unreadable(dataset: Dataset, channels: int) -> None:
    """Remove the files that do not decode from an ImageFolder or :class:`UnlabeledImages`, in place."""
    if isinstance(dataset, UnlabeledImages):
        dataset.files = readable_images(dataset.files, channels)
        return
    kept = {str(p) for p in readable_images([path for path, _ in dataset.samples], channels)}
    dataset.samples = [(path, target) for path, target in dataset.samples if path in kept]
    dataset.imgs = dataset.samples
    dataset.targets = [target for _, target in dataset.samples]


def sample_batches(data: Any, model: Optional[torch.nn.Module] = None, *, num_batches: int = 8,
                   batch_size: int = 32, data_config: Optional[dict] = None) -> list[torch.Tensor]:
    """At most ``num_batches`` batches of images (labels dropped), the same on every call.

    ``data``: an image folder (ImageFolder classes or images alone, read with
    ``model``'s preprocessing and ``data_config`` overrides), a Dataset (an evenly
    spaced subset, so every class of a sorted folder shows), a tensor of images
    (N, C, ...), or an iterable of batches (images or (images, labels)).
    """
    if num_batches < 1 or batch_size < 1:
        raise PoolswapError(f"need at least one batch of one image, got {num_batches} batch(es) of {batch_size}")
    if isinstance(data, (str, os.PathLike)):
        from ..model import spec_of

        spec = spec_of(model) if model is not None else None
        config = resolve_data_config(model, spec=spec.text if spec else None, overrides=data_config)
        data = image_dataset(data, build_transform(config), channels=int(config["input_size"][0]))
    if isinstance(data, torch.Tensor):
        batches = list(data[:num_batches * batch_size].split(batch_size))
    elif isinstance(data, Dataset) and hasattr(data, "__len__"):
        count = min(len(data), num_batches * batch_size)
        if count == 0:
            raise PoolswapError("the data holds no images")
        indices = [i * len(data) // count for i in range(count)]
        images = []
        for i in indices:
            item = data[i]
            images.append(item[0] if isinstance(item, (tuple, list)) else item)
        batches = list(torch.stack(images).split(batch_size))
    else:
        batches = []
        for batch in data:
            if len(batches) >= num_batches:
                break
            batches.append(batch[0] if isinstance(batch, (tuple, list)) else batch)
    batches = [b for b in batches if len(b)]
    if not batches:
        raise PoolswapError("the data holds no images")
    return batches


def imagenet_synsets() -> list[str]:
    """ImageNet-1k WordNet ids in class-index order (the list timm ships)."""
    import timm

    path = Path(timm.__file__).resolve().parent / "data" / "_info" / "imagenet_synsets.txt"
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def label_map(classes: Sequence[str], num_outputs: int) -> Optional[list[int]]:
    """For each folder class, the model output it means; ``None`` for the identity.

    Matching counts give the identity; WordNet-id folder names with a 1000-way head
    map onto ImageNet-1k indices. Anything else is an error naming both counts.
    """
    classes = list(classes)
    if not classes:
        return None
    if num_outputs == 1000 and all(c.startswith("n") and c[1:].isdigit() for c in classes):
        index = {wnid: i for i, wnid in enumerate(imagenet_synsets())}
        missing = [c for c in classes if c not in index]
        if missing:
            raise PoolswapError(f"class folders {', '.join(missing[:3])} are not ImageNet-1k WordNet ids")
        mapped = [index[c] for c in classes]
        return None if mapped == list(range(num_outputs)) else mapped
    if len(classes) == num_outputs:
        return None
    raise PoolswapError(
        f"the data has {len(classes)} classes but the model's head has {num_outputs} outputs; "
        "use class folders named by ImageNet WordNet ids for a 1000-way head, or a matching head"
    )


def dataset_classes(dataset: Dataset) -> list[str]:
    """The class names of a dataset (``[]`` when it is unlabelled or does not say)."""
    return list(getattr(dataset, "classes", []) or [])


def _sample_seed(*parts: int) -> int:
    return zlib.crc32(",".join(str(p) for p in parts).encode())


class SeededTransformDataset(Dataset):
    """Applies random transforms with an RNG seeded by (seed, epoch, index).

    The data of a step is then a function of where the step is, not of what ran
    before it: a resumed run reads the same pixels, on any number of workers, and
    the global RNG (dropout's) is left untouched.
    """

    def __init__(self, dataset: Dataset, seed: int = 0) -> None:
        self.dataset = dataset
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int):
        with torch.random.fork_rng(devices=[]):
            # The CPU generator alone: transforms run on the CPU, and torch.manual_seed would also
            # seed every accelerator, which costs more than decoding the image.
            torch.default_generator.manual_seed(_sample_seed(self.seed, self.epoch, index))
            return self.dataset[index]

    def __getattr__(self, name: str) -> Any:
        if name in ("dataset", "seed", "epoch"):
            raise AttributeError(name)
        return getattr(self.dataset, name)


class EpochSampler(Sampler[int]):
    """Indices of one epoch: a (seed, epoch) permutation, sharded by rank, optionally started at a step.

    Like ``DistributedSampler``: every rank gets ``ceil(n / world)`` indices
    (padded by wrapping round); ``start_step`` skips whole batches, so a resumed
    epoch sees exactly the batches it had left.
    """

    def __init__(self, size: int, *, batch_size: int, shuffle: bool = True, seed: int = 0,
                 rank: int = 0, world_size: int = 1) -> None:
        if size < 1:
            raise PoolswapError("the dataset is empty")
        self.size = size
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.start_step = 0
        self.per_rank = math.ceil(size / world_size)

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        self.epoch = epoch
        self.start_step = start_step

    def steps_per_epoch(self) -> int:
        return math.ceil(self.per_rank / self.batch_size)

    def epoch_indices(self) -> list[int]:
        if self.shuffle:
            generator = torch.Generator().manual_seed(_sample_seed(self.seed, self.epoch, 7919))
            order = torch.randperm(self.size, generator=generator).tolist()
        else:
            order = list(range(self.size))
        total = self.per_rank * self.world_size
        order = (order * math.ceil(total / self.size))[:total]
        return order[self.rank:total:self.world_size]

    def __iter__(self) -> Iterator[int]:
        return iter(self.epoch_indices()[self.start_step * self.batch_size:])

    def __len__(self) -> int:
        return max(0, self.per_rank - self.start_step * self.batch_size)
