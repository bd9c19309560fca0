"""Widen a trained net into a wider one of the same design, computing the same function (Net2WiderNet).

    python scripts/widen_member.py members/m12-m10-restart-s141 --to vgg --out runs/m12-wide-init [--seed 291]

Each conv or dense layer of the wider net keeps the narrow layer's units and fills the extra ones with copies of
randomly chosen units (kernel and BatchNorm statistics alike); the next layer splits each copied unit's outgoing
weights among its copies with random fractions that sum to one per weight. The wider net then gives the narrow
net's outputs (up to float rounding), and the random split lets the copies drift apart once training starts (an
equal split would give them equal gradients for ever). `ferkit train --model vgg --init OUT` starts from it.

Only families built by `build_vgg_family` at wider widths qualify (`medium` -> `vgg`: 48-384 -> 64-512): their
layers match one to one in order, only widths differ. A narrow net without the wide one's hidden dense layer
(`compact` -> `vgg`) first gets one that passes its pooled features through unchanged (Net2DeeperNet): an identity
kernel, and a BatchNorm whose statistics and scale are measured on Training faces (`--data`), so that it is the
identity at inference and nearly so in training, where it normalises by batch statistics.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402


def widen_weights(narrow, wide, seed: int = 0) -> None:
    """Set `wide`'s weights from `narrow`'s so that both compute the same function."""
    rng = np.random.default_rng(seed)
    pairs = [(a, b) for a, b in zip(narrow.layers, wide.layers) if a.weights]
    if len(pairs) != len([layer for layer in wide.layers if layer.weights]) or len(narrow.layers) != len(wide.layers):
        raise ValueError(f"{narrow.name} and {wide.name} do not have the same layers")
    mapping = None  # input unit of the current layer -> unit of the narrow net it copies
    for a, b in pairs:
        kind = type(a).__name__
        if kind != type(b).__name__:
            raise ValueError(f"layer {a.name} is a {kind}, {b.name} a {type(b).__name__}")
        weights = [w.numpy() for w in a.weights]
        if kind == "BatchNormalization":  # per-channel: follows the previous layer's copies
            b.set_weights([w[mapping] for w in weights])
            continue
        if kind not in ("Conv2D", "Dense"):
            raise ValueError(f"cannot widen a {kind} ({a.name})")
        kernel = weights[0]
        if mapping is not None:  # split each narrow input unit's weights among its copies
            kernel = split_inputs(kernel, mapping, rng)
        narrow_out, wide_out = kernel.shape[-1], b.weights[0].shape[-1]
        if wide_out < narrow_out:
            raise ValueError(f"{b.name} has {wide_out} units, fewer than {a.name}'s {narrow_out}")
        mapping = np.concatenate([np.arange(narrow_out), rng.integers(0, narrow_out, wide_out - narrow_out)])
        b.set_weights([kernel[..., mapping]] + [w[mapping] for w in weights[1:]])


def with_identity_head(narrow, faces: np.ndarray):
    """`narrow` (a `build_vgg_family` net without a hidden dense layer) with one added before its classifier,
    as wide as its pooled features, that leaves its probabilities unchanged. The new BatchNorm's moving mean and
    variance are the features' own on `faces` (N, H, W, 1), gamma = sqrt(var + eps) and beta = mean."""
    import keras

    from ferkit.models.vgg import build_vgg_family

    convs = [layer for layer in narrow.layers if type(layer).__name__ == "Conv2D"]
    pools = [layer for layer in narrow.layers if type(layer).__name__ == "MaxPooling2D"]
    dense = [layer for layer in narrow.layers if type(layer).__name__ == "Dense"]
    if len(dense) != 1 or not pools or len(convs) % len(pools):
        raise ValueError(f"{narrow.name} is not a vgg-family net without a hidden dense layer")
    per_stage = len(convs) // len(pools)
    widths = tuple(convs[i * per_stage].filters for i in range(len(pools)))
    features = convs[-1].filters
    deep = build_vgg_family(narrow.input_shape[1:], dense[0].units, widths, convs_per_stage=per_stage,
                            dense_units=features, name=f"{narrow.name}_deep")
    old = [layer for layer in narrow.layers if layer.weights]
    new = [layer for layer in deep.layers if layer.weights]
    for a, b in zip(old[:-1], new[:-3]):
        b.set_weights([w.numpy() for w in a.weights])
    new[-1].set_weights([w.numpy() for w in old[-1].weights])
    hidden, norm = new[-3], new[-2]
    hidden.set_weights([np.eye(features, dtype=np.float32)])
    pooled = keras.Model(narrow.input, dense[0].input)
    values = np.concatenate([keras.ops.convert_to_numpy(pooled(faces[i:i + 256], training=False))
                             for i in range(0, len(faces), 256)])
    mean, var = values.mean(axis=0), values.var(axis=0)
    norm.set_weights([w.astype(np.float32) for w in (np.sqrt(var + norm.epsilon), mean, mean, var)])
    return deep


def split_inputs(kernel: np.ndarray, mapping: np.ndarray, rng) -> np.ndarray:
    """kernel[..., in, out] -> kernel[..., len(mapping), out], each narrow input's weights split among its copies."""
    fractions = rng.uniform(0.25, 1.0, kernel.shape[:-2] + (len(mapping), kernel.shape[-1]))
    totals = np.zeros(kernel.shape[:-2] + (kernel.shape[-2], kernel.shape[-1]))
    for unit in range(kernel.shape[-2]):
        totals[..., unit, :] = fractions[..., mapping == unit, :].sum(axis=-2)
    return (kernel[..., mapping, :] * fractions / totals[..., mapping, :]).astype(kernel.dtype)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="run folder with model.json and model.weights.h5")
    parser.add_argument("--to", required=True, help="wider family from ferkit's registry, e.g. vgg")
    parser.add_argument("--out", required=True, type=Path, help="folder to write model.json and model.weights.h5")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", help="FER2013 CSV, when the narrow net needs a hidden dense layer first")
    args = parser.parse_args(argv)

    from ferkit.inference.classifier import WEIGHTS_FILE, resolve_model
    from ferkit.models.registry import create_model
    import keras

    folder = resolve_model(args.model)
    narrow = keras.models.model_from_json((folder / "model.json").read_text())
    narrow.load_weights(folder / WEIGHTS_FILE)
    wide = create_model(args.to)
    source = narrow
    if len(narrow.layers) < len(wide.layers) and sum(type(x).__name__ == "Dense" for x in narrow.layers) == 1:
        if not args.data:
            print(f"error: {args.model} has no hidden dense layer; --data is needed to add one", file=sys.stderr)
            return 2
        from ferkit.training.quantize import calibration_faces

        source = with_identity_head(narrow, calibration_faces(args.data, count=4096, seed=args.seed))
    widen_weights(source, wide, args.seed)
    rng = np.random.default_rng(args.seed + 1)
    faces = rng.integers(0, 256, (32,) + tuple(narrow.input_shape[1:])).astype("float32")
    gap = float(np.abs(narrow.predict(faces, verbose=0) - wide.predict(faces, verbose=0)).max())
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "model.json").write_text(wide.to_json())
    wide.save_weights(args.out / WEIGHTS_FILE)
    print(f"{args.model} ({narrow.count_params():,} weights) -> {args.to} ({wide.count_params():,}) in {args.out}; "
          f"largest probability difference on 32 random faces {gap:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
