"""Run a model exported by ``poolswap export`` in ONNX Runtime, with poolswap's custom-op library.

    python examples/deploy_onnxruntime.py model.onnx cat.jpg dog.jpg
    python examples/deploy_onnxruntime.py model.onnx            # random inputs: a smoke test

Without poolswap installed, ``onnxruntime.InferenceSession(path)`` runs the same
file through the function body it carries; ``poolswap.deploy.session`` registers
the fused kernels (``sess_options.register_custom_ops_library(str(poolswap.ort_library_path()))``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from poolswap.deploy import session
from poolswap.deploy.images import load_images
from poolswap.data.preprocess import class_names, model_preprocessing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="the .onnx file from `poolswap export`")
    parser.add_argument("images", type=Path, nargs="*", help="image files (default: random inputs)")
    parser.add_argument("--size", type=int, nargs=2, default=None, metavar=("H", "W"),
                        help="input size (default: the size the model was exported with)")
    parser.add_argument("--providers", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--top-k", type=int, default=5)
    args = parser.parse_args()

    sess = session(args.model, providers=args.providers)
    print(f"providers {sess.get_providers()}; poolswap library: {sess.poolswap_library or 'not found (function body)'}")
    meta = sess.get_modelmeta().custom_metadata_map
    labels_of = class_names(meta)

    inp = sess.get_inputs()[0]
    # the preprocessing the model was exported with (its mean, std, crop, interpolation and size)
    preprocessing = model_preprocessing(meta, inp.shape)
    if args.size:
        preprocessing = preprocessing.with_size(*args.size)
    channels, height, width = preprocessing.input_size
    if args.images:
        batch = load_images(args.images, preprocessing)
        names = [p.name for p in args.images]
    else:
        batch = np.random.default_rng(0).standard_normal((2, channels, height, width), dtype=np.float32)
        names = ["random-0", "random-1"]

    logits = sess.run(None, {inp.name: batch})[0]
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    for name, p in zip(names, probs):
        top = np.argsort(-p)[: args.top_k]
        labels = ", ".join(f"{labels_of[i] if labels_of else i} {p[i]:.3f}" for i in top)
        print(f"{name}: {labels}")


if __name__ == "__main__":
    main()
