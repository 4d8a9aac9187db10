"""``poolswap predict``: top-5 classes of images with an exported model on ONNX Runtime."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..arguments import integer

NAME = "predict"
HELP = "run an exported model on images with ONNX Runtime and print the top-5 classes"
ORDER = 60


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL.onnx", help="the exported model")
    parser.add_argument("images", metavar="IMAGE", nargs="+", type=Path, help="image files")
    parser.add_argument("--top-k", type=integer(1), default=5, help="classes to print per image")
    parser.add_argument("--size", type=integer(1), nargs=2, default=None, metavar=("H", "W"),
                        help="input size (default: the model's, from its stored preprocessing)")
    parser.add_argument("--providers", default="auto", help="auto, cpu, cuda or a comma-separated ORT provider list")
    parser.add_argument("--no-library", action="store_true", help="run SoftPool through the model's function body")
    parser.add_argument("--strict", action="store_true", help="fail instead of falling back when the library is unusable")
    parser.add_argument("--skip-bad-images", action="store_true",
                        help="skip image files that cannot be decoded, with a warning (default: stop at the first)")


def _softmax(logits):
    import numpy as np

    shifted = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ...deploy import session
    from ...deploy.images import load_images, readable_images
    from ...data.preprocess import class_names, model_preprocessing
    from ...errors import PoolswapError

    providers = args.providers if args.providers in ("auto", "cpu", "cuda") else args.providers.split(",")
    sess = session(args.model, providers, library=not args.no_library, strict=args.strict)
    spec = sess.get_inputs()[0]
    meta = sess.get_modelmeta().custom_metadata_map
    preprocessing = model_preprocessing(meta, spec.shape)  # the model's mean, std, crop and interpolation
    if args.size is not None:
        preprocessing = preprocessing.with_size(*args.size)
    names = class_names(meta)
    for image in args.images:
        if not image.is_file():
            raise FileNotFoundError(f"no image at {image}")
    images = readable_images(args.images, preprocessing.input_size[0]) if args.skip_bad_images else args.images
    batch = load_images(images, preprocessing)
    if isinstance(spec.shape[0], int) and spec.shape[0] > 0 and spec.shape[0] != len(batch):
        outputs = [sess.run(None, {spec.name: batch[i : i + 1]})[0][0] for i in range(len(batch))]
        logits = np.stack(outputs)
    else:
        logits = sess.run(None, {spec.name: batch})[0]
    if logits.ndim != 2:
        raise PoolswapError(f"the model's output has shape {logits.shape}; predict needs (N, classes) logits")
    bad = [str(image) for image, row in zip(args.images, logits) if not np.isfinite(row).all()]
    if bad:
        raise PoolswapError(f"the model's outputs are not finite (NaN or inf) for {bad[0]}"
                            f"{f' and {len(bad) - 1} more' if len(bad) > 1 else ''}; check the export with "
                            "`poolswap validate --data` (a `fast` body overflows on some activations)")
    if names is not None and len(names) != logits.shape[1]:
        raise PoolswapError(f"the model stores {len(names)} class names for {logits.shape[1]} outputs; "
                            "re-export it with a --class-names file of one name per output")
    probs = _softmax(logits.astype(np.float64))
    k = min(args.top_k, probs.shape[1])
    for image, row in zip(images, probs):
        print(image)
        for idx in np.argsort(-row)[:k]:
            label = names[idx] if names and idx < len(names) else f"class {idx}"
            print(f"  {row[idx]:7.2%}  {idx:>5}  {label}")
    return 0
