"""Static int8 quantization of a model graph, for speed at serving time.

On the CPU `fast` was chosen on (AVX-512 VNNI, eleventh session) the int8 graph of `fast` with its mirrored
view ran in 1.66 ms a face against 2.59 ms in float (2 threads; 2.32 against 4.97 on one), which is what lets
`fast` carry that view and stay under 2 ms a face; the float/int8 ratio differs from one CPU to another. Weights are int8 per
channel, activations uint8 with ranges fitted on Training faces that are not in the holdout (so the
temperature, fitted on the holdout afterwards, and every holdout score stay honest). Percentile
ranges (99.999%) measured closest to the float graph on the holdout; min-max and entropy ranges lost
0.2-0.3 points more. Since the nineteenth session each BatchNorm is folded into its Conv before quantizing and
the ensemble's tail (softmax on) stays float: on the holdout the int8 graph of `fast`'s network agreed with its
float graph on 99.1% of faces instead of 97.3%, and ran 2.4x faster (0.95 against 2.25 ms; docs/models.md).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from ..errors import ModelError

CALIBRATION_FACES = 512
# ONNX Runtime's histogram calibrator holds every activation of the faces fed to it at once: about 6 MB a face
# for each member and view in the graph (a 4-member, 2-view graph on 512 faces was killed at 23 GB), so faces
# go in strides of at most this many face-member-views, their histograms merged stride by stride.
FACE_VIEWS_AT_ONCE = 1024
CALIBRATION_SEED = 0
PERCENTILE = 99.999


def calibration_faces(data: str | Path, count: int = CALIBRATION_FACES, holdout: float = 0.1,
                      holdout_seed: int = 42, seed: int = CALIBRATION_SEED) -> np.ndarray:
    """`count` Training faces drawn (seeded) from outside the holdout, as (count, 48, 48, 1) float32."""
    from ..data import load_dataset

    train, _ = load_dataset(data, "fer2013").split("Training").holdout(holdout, holdout_seed)
    if len(train) == 0:
        raise ModelError(f"{data}: no Training faces outside the holdout to fit int8 ranges on")
    picked = np.random.default_rng(seed).choice(len(train), min(count, len(train)), replace=False)
    return train.images[np.sort(picked)].astype(np.float32)[..., None]


def calibration_stride(batches: int, batch: int, member_views: int) -> int:
    """Batches fed to the calibrator at once: the most that stay within FACE_VIEWS_AT_ONCE and divide
    `batches` (ONNX Runtime's strides must), at least one."""
    limit = max(1, FACE_VIEWS_AT_ONCE // (member_views * batch))
    return max(d for d in range(1, batches + 1) if batches % d == 0 and d <= limit)


def subtractions_as_additions(model) -> int:
    """Rewrite every `x - constant` as `x + (-constant)` in place; the number rewritten.

    Keras on torch exports each BatchNorm as Sub, Mul, Add after its Conv. ONNX Runtime's optimiser folds a
    Conv followed by Add or Mul into the Conv's weights but stops at a Sub, so without this every BatchNorm
    stays as three element-wise ops, each wrapped in its own int8 Quantize/Dequantize pair (slower, and each
    rounding adds error)."""
    from onnx import numpy_helper

    constants = {t.name: t for t in model.graph.initializer}
    rewritten, replaced = 0, set()
    for node in model.graph.node:
        if node.op_type == "Sub" and node.input[1] in constants:
            negated = numpy_helper.to_array(constants[node.input[1]])
            name = f"{node.input[1]}_negated"
            if name not in constants:
                constants[name] = numpy_helper.from_array(-negated, name)
                model.graph.initializer.append(constants[name])
            replaced.add(node.input[1])
            node.op_type, node.input[1] = "Add", name
            rewritten += 1
    # the constants nothing reads any more go too: left in, ONNX Runtime warns about each one at every load
    still_read = {name for node in model.graph.node for name in node.input} | {o.name for o in model.graph.output}
    unread = [t for t in model.graph.initializer if t.name in replaced - still_read]
    for tensor in unread:
        model.graph.initializer.remove(tensor)
    return rewritten


def flat_biases(model) -> int:
    """Reshape each Conv and Gemm bias held as (1, C) or (1, C, 1, 1) to (C,), in place; the number reshaped.

    A dense layer's BatchNorm, once its Sub is an Add, fuses into a Gemm whose bias keeps the Add constant's
    (1, C) shape; ONNX Runtime's per-channel quantizer then fails on it (it indexes the bias per channel)."""
    from onnx import numpy_helper

    constants = {t.name: t for t in model.graph.initializer}
    reshaped = 0
    for node in model.graph.node:
        if node.op_type in ("Conv", "Gemm") and len(node.input) == 3 and node.input[2] in constants:
            bias = constants[node.input[2]]
            if len(bias.dims) > 1 and sum(d != 1 for d in bias.dims) <= 1:  # a row or an image, not a matrix
                flat = numpy_helper.from_array(numpy_helper.to_array(bias).reshape(-1), bias.name)
                bias.CopyFrom(flat)
                reshaped += 1
    return reshaped


def tail_nodes(model) -> list[str]:
    """Names of each Softmax and every node after it (member weights, their sum, the mean over views), naming
    unnamed ones in place. They stay in float: quantized, probabilities round to steps of 1/255 per member
    before they are mixed, and close calls between classes flip."""
    for i, node in enumerate(model.graph.node):
        if not node.name:
            node.name = f"ferkit_node_{i}"
    downstream, names = set(), []
    for node in model.graph.node:  # ONNX graphs are stored in topological order
        if node.op_type == "Softmax" or downstream.intersection(node.input):
            downstream.update(node.output)
            names.append(node.name)
    return names


def quantize_onnx(source: str | Path, out: str | Path, faces: np.ndarray, batch: int = 64,
                  member_views: int = 1) -> Path:
    """Write `source` (a float ONNX graph with input `face`) as a QDQ int8 graph to `out`.

    `member_views`: networks times views in the graph, which sets how many faces are calibrated at once
    (one stride, as before, for a single network with its mirror: `fast` is the same graph either way)."""
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    batches = [faces[i:i + batch] for i in range(0, len(faces), batch)]

    class Faces(CalibrationDataReader):
        def __init__(self):
            self.set_range(0, len(batches))

        def __len__(self):
            return len(batches)

        def set_range(self, start_index, end_index):
            self.position, self.end = start_index, end_index

        def get_next(self):
            if self.position >= self.end:
                return None
            self.position += 1
            return {"face": batches[self.position - 1]}

    import onnx

    model = onnx.load(str(source))
    if any(node.op_type == "QuantizeLinear" for node in model.graph.node):
        raise ModelError(f"{source}: already int8; build from the float members instead")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ferkit-int8-") as tmp:
        rewritten, prepared = Path(tmp) / "rewritten.onnx", Path(tmp) / "prepared.onnx"
        subtractions_as_additions(model)
        onnx.save(model, str(rewritten))
        quant_pre_process(str(rewritten), str(prepared))  # shapes inferred, BatchNorm folded into the convolutions
        model = onnx.load(str(prepared))
        flat_biases(model)
        keep_float = tail_nodes(model)
        onnx.save(model, str(prepared))
        quantize_static(str(prepared), str(out), Faces(), quant_format=QuantFormat.QDQ, per_channel=True,
                        nodes_to_exclude=keep_float,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QUInt8,
                        # uint8 weights, not int8: on AVX2 CPUs without VNNI the uint8 x int8 kernels add
                        # products in int16 and saturate (the int8-weight graphs lost 0.8-1.0 point on a Zen 3);
                        # 7-bit int8 weights (reduce_range) still flipped 2.3% of `fast`'s faces (runs/s20-int8-avx2-plan.md)
                        calibrate_method=CalibrationMethod.Percentile,
                        # despite its name, ONNX Runtime feeds any calibration method in these strides
                        extra_options={"CalibPercentile": PERCENTILE,
                                       "CalibStridedMinMax": calibration_stride(len(batches), batch, member_views)})
    return out
