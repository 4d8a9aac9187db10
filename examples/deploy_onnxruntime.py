"""Run a model exported by ``poolswap export`` in ONNX Runtime, with poolswap's custom-op library.

    python examples/deploy_onnxruntime.py model.onnx cat.jpg dog.jpg
    python examples/deploy_onnxruntime.py model.onnx            # random inputs: a smoke test

Without poolswap installed, ``onnxruntime.InferenceSession(path)`` runs the same
file through the function body it carries; ``poolswap.deploy.session`` registers
the fused kernels (``sess_options.register_custom_ops_library(poolswap.ort_library_path())``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from poolswap.deploy import session
from poolswap.image_files import decode_image

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # ImageNet normalisation: use your model's own


def load_image(path: Path, channels: int, height: int, width: int) -> np.ndarray:
    """One image as a (C, H, W) float32 array, resized and normalised."""
    from PIL import Image

    image = decode_image(path, channels).resize((width, height), Image.BILINEAR)  # any mode, its real bit depth
    array = np.asarray(image, dtype=np.float32) / 255.0
    array = array.reshape(height, width, channels).transpose(2, 0, 1)
    if channels == 3:
        array = (array - np.array(MEAN, np.float32)[:, None, None]) / np.array(STD, np.float32)[:, None, None]
    return np.ascontiguousarray(array)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="the .onnx file from `poolswap export`")
    parser.add_argument("images", type=Path, nargs="*", help="image files (default: random inputs)")
    parser.add_argument("--size", type=int, nargs=2, default=None, metavar=("H", "W"),
                        help="input size when the model's is symbolic (default: the model's, else 224 224)")
    parser.add_argument("--providers", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--top-k", type=int, default=5)
    args = parser.parse_args()

    sess = session(args.model, providers=args.providers)
    print(f"providers {sess.get_providers()}; poolswap library: {sess.poolswap_library or 'not found (function body)'}")
    meta = sess.get_modelmeta().custom_metadata_map
    class_names = json.loads(meta["poolswap.class_names"]) if "poolswap.class_names" in meta else None

    inp = sess.get_inputs()[0]
    channels, *hw = inp.shape[1:]
    height, width = args.size or [d if isinstance(d, int) else 224 for d in hw]
    if args.images:
        batch = np.stack([load_image(p, channels, height, width) for p in args.images])
        names = [p.name for p in args.images]
    else:
        batch = np.random.default_rng(0).standard_normal((2, channels, height, width), dtype=np.float32)
        names = ["random-0", "random-1"]

    logits = sess.run(None, {inp.name: batch})[0]
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    for name, p in zip(names, probs):
        top = np.argsort(-p)[: args.top_k]
        labels = ", ".join(f"{class_names[i] if class_names else i} {p[i]:.3f}" for i in top)
        print(f"{name}: {labels}")


if __name__ == "__main__":
    main()
