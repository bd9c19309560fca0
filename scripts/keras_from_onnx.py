"""Rebuild a member's Keras weights from its exported ONNX graph, for members whose weights were never committed.

    python scripts/keras_from_onnx.py members/m15-m12-kd-s171 --data ../shared/data/fer2013/fer2013.csv.gz \
        --out runs/m15-keras

Convolution and dense kernels come over as they are. Keras on torch exports each BatchNorm folded into
Sub(mean), Mul(gamma / sqrt(var + eps)), Add(beta): inference needs only the ratio, but training normalises
by batch statistics, so gamma and the variance must be right apart (a widened net trained from a wrong split
starts from a different function). The variance is therefore measured on Training faces outside the holdout,
what the moving average estimates, and gamma = scale * sqrt(var + eps): the rebuilt net computes the graph's
probabilities exactly, and trains from where the original would have.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402

BATCH = 256


def graph_parameters(onnx_path: Path) -> list[tuple[str, np.ndarray]]:
    """The graph's initializers in order, each with the op that consumes it (Conv, MatMul, Sub, Mul, Add)."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_path)).graph
    names = {t.name for t in graph.initializer}
    consumer = {name: node.op_type for node in graph.node for name in node.input if name in names}
    return [(consumer.get(t.name, "?"), numpy_helper.to_array(t)) for t in graph.initializer]


def rebuild_from_onnx(net, onnx_path: Path, faces: np.ndarray) -> None:
    """Set `net`'s weights (built from the member's model.json) from its ONNX graph; BatchNorm variances are
    measured on `faces` (N, H, W, 1) float32, through the layers already rebuilt."""
    import keras

    params = iter(graph_parameters(onnx_path))

    def take(*ops):
        op, value = next(params, (None, None))
        if op not in ops:
            raise ValueError(f"{onnx_path}: expected the {' or '.join(ops)} parameter, found {op}")
        return op, value

    for layer in net.layers:
        kind = type(layer).__name__
        if kind == "Conv2D":
            weights = [take("Conv")[1].transpose(2, 3, 1, 0)]  # ONNX (out, in, h, w) -> Keras (h, w, in, out)
            if layer.use_bias:
                weights.append(take("Conv")[1].reshape(-1))
            layer.set_weights(weights)
        elif kind == "Dense":
            weights = [take("MatMul", "Gemm")[1]]
            if layer.use_bias:
                weights.append(take("Add")[1].reshape(-1))
            layer.set_weights(weights)
        elif kind == "BatchNormalization":
            folded = dict(take("Sub", "Mul", "Add") for _ in range(3))
            if len(folded) != 3:
                raise ValueError(f"{onnx_path}: {layer.name} is not exported as Sub, Mul and Add")
            mean, scale, beta = (folded[op].reshape(-1) for op in ("Sub", "Mul", "Add"))
            probe = keras.Model(net.input, layer.input)
            inputs = np.concatenate([keras.ops.convert_to_numpy(probe(faces[i:i + BATCH], training=False))
                                     for i in range(0, len(faces), BATCH)])
            var = inputs.reshape(-1, inputs.shape[-1]).var(axis=0)
            gamma = scale * np.sqrt(var + layer.epsilon)
            layer.set_weights([w.astype(np.float32) for w in (gamma, beta, mean, var)])
        elif layer.weights:
            raise ValueError(f"cannot rebuild a {kind} ({layer.name}) from ONNX")
    if next(params, None) is not None:
        raise ValueError(f"{onnx_path}: parameters left over; the graph is not this architecture")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="folder with model.json and model.onnx (a member or run folder)")
    parser.add_argument("--data", required=True, help="FER2013 CSV: the Training faces outside the holdout")
    parser.add_argument("--out", required=True, type=Path, help="folder to write model.json and model.weights.h5")
    parser.add_argument("--faces", type=int, default=4096, help="faces the BatchNorm variances are measured on")
    parser.add_argument("--seed", type=int, default=36, help="seed of the faces' draw")
    args = parser.parse_args(argv)

    from ferkit.errors import FerkitError
    from ferkit.inference.classifier import JSON_FILE, ONNX_FILE, WEIGHTS_FILE, FacialExpressionModel
    from ferkit.training.backend import setup_keras
    from ferkit.training.quantize import calibration_faces

    keras = setup_keras("float32")
    import ferkit.models  # noqa: F401  (registers the custom layers model.json names)

    folder = Path(args.model)
    try:
        for name in (JSON_FILE, ONNX_FILE):
            if not (folder / name).is_file():
                raise FerkitError(f"{folder}: no {name}")
        net = keras.models.model_from_json((folder / JSON_FILE).read_text())
        faces = calibration_faces(args.data, count=args.faces, seed=args.seed)
        rebuild_from_onnx(net, folder / ONNX_FILE, faces)
        reference = FacialExpressionModel(folder / ONNX_FILE).predict_proba(faces[:BATCH, ..., 0], calibrated=False)
    except (FerkitError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    rebuilt = keras.ops.convert_to_numpy(net(faces[:BATCH], training=False))
    gap = float(np.abs(reference - rebuilt).max())
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / JSON_FILE).write_text(net.to_json())
    net.save_weights(args.out / WEIGHTS_FILE)
    print(f"{folder} -> {args.out}: largest probability difference from its ONNX on {BATCH} faces {gap:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
