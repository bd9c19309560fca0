"""int8 quantization of a model graph (`ferkit ensemble --int8`): what `fast` serves with a mirrored view."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ferkit.cli import main
from ferkit.data import load_dataset
from ferkit.errors import ModelError
from ferkit.inference.classifier import FacialExpressionModel
from ferkit.labels import IMAGE_SIZE, NUM_CLASSES
from ferkit.training.ensemble import build_ensemble
from ferkit.training.quantize import (calibration_faces, calibration_stride, flat_biases, quantize_onnx,
                                      subtractions_as_additions, tail_nodes)

onnx = pytest.importorskip("onnx")


def face_in_probs_out():
    """A member graph's input and output, as ferkit's exported networks name and shape them."""
    from onnx import TensorProto, helper

    return ([helper.make_tensor_value_info("face", TensorProto.FLOAT, ["batch", IMAGE_SIZE, IMAGE_SIZE, 1])],
            [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", NUM_CLASSES])])


def save_member(graph, path):
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    model.ir_version = 9
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def conv_member(path, seed: int = 3):
    """A small ONNX conv net (conv 3x3 -> ReLU -> global mean -> dense -> softmax) with random weights:
    convolution and matrix product are what quantization rewrites."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(seed)
    k = rng.normal(0, 0.05, (8, 1, 3, 3)).astype(np.float32)
    w = rng.normal(0, 2.0, (8, NUM_CLASSES)).astype(np.float32)
    inits = [helper.make_tensor("k", TensorProto.FLOAT, k.shape, k.ravel()),
             helper.make_tensor("w", TensorProto.FLOAT, w.shape, w.ravel()),
             helper.make_tensor("scale", TensorProto.FLOAT, [], [1 / 255])]
    graph = helper.make_graph(
        [helper.make_node("Transpose", ["face"], ["nchw"], perm=[0, 3, 1, 2]),
         helper.make_node("Mul", ["nchw", "scale"], ["x"]),
         helper.make_node("Conv", ["x", "k"], ["c"], pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["c"], ["r"]),
         helper.make_node("GlobalAveragePool", ["r"], ["g"]),
         helper.make_node("Flatten", ["g"], ["f"], axis=1),
         helper.make_node("MatMul", ["f", "w"], ["z"]),
         helper.make_node("Softmax", ["z"], ["probs"], axis=1)],
        "conv_member", *face_in_probs_out(), inits)
    return save_member(graph, path)


def batchnorm_member(path, seed: int = 5):
    """A conv net whose BatchNorms are Sub, Mul, Add after the Conv and after the dense layer, as Keras on torch
    exports them, with a different mean, scale and shift for each channel."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(seed)
    k = rng.normal(0, 0.3, (8, 1, 3, 3)).astype(np.float32)
    w = rng.normal(0, 2.0, (8, NUM_CLASSES)).astype(np.float32)
    mean, scale, shift = (rng.normal(loc, 0.5, (1, 8, 1, 1)).astype(np.float32) for loc in (0.2, 1.5, -0.1))
    d_mean, d_scale, d_shift = (rng.normal(loc, 0.5, (1, NUM_CLASSES)).astype(np.float32) for loc in (0.1, 1.2, 0.3))
    inits = [helper.make_tensor(name, TensorProto.FLOAT, a.shape, a.ravel())
             for name, a in [("k", k), ("w", w), ("mean", mean), ("bn_scale", scale), ("shift", shift),
                             ("d_mean", d_mean), ("d_scale", d_scale), ("d_shift", d_shift)]]
    inits.append(helper.make_tensor("scale", TensorProto.FLOAT, [], [1 / 255]))
    graph = helper.make_graph(
        [helper.make_node("Transpose", ["face"], ["nchw"], perm=[0, 3, 1, 2]),
         helper.make_node("Mul", ["nchw", "scale"], ["x"]),
         helper.make_node("Conv", ["x", "k"], ["c"], pads=[1, 1, 1, 1]),
         helper.make_node("Sub", ["c", "mean"], ["centred"]),
         helper.make_node("Mul", ["centred", "bn_scale"], ["scaled"]),
         helper.make_node("Add", ["scaled", "shift"], ["normed"]),
         helper.make_node("Relu", ["normed"], ["r"]),
         helper.make_node("GlobalAveragePool", ["r"], ["g"]),
         helper.make_node("Flatten", ["g"], ["f"], axis=1),
         helper.make_node("MatMul", ["f", "w"], ["d"]),
         helper.make_node("Sub", ["d", "d_mean"], ["d_centred"]),
         helper.make_node("Mul", ["d_centred", "d_scale"], ["d_scaled"]),
         helper.make_node("Add", ["d_scaled", "d_shift"], ["z"]),
         helper.make_node("Softmax", ["z"], ["probs"], axis=1)],
        "batchnorm_member", *face_in_probs_out(), inits)
    return save_member(graph, path)


def varied_faces(n: int, seed: int) -> np.ndarray:
    """Faces whose left and right halves differ (so the mirrored view counts), with noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE]
    faces = [np.clip(rng.uniform(0.3, 1.0) * (4.0 * x + rng.uniform(-2, 2) * y) + rng.normal(0, 25, x.shape), 0, 255)
             for _ in range(n)]
    return np.stack(faces).astype(np.float32)[..., None]


def test_int8_graph_is_quantized_and_gives_the_float_graphs_scores(tmp_path):
    source = build_ensemble([conv_member(tmp_path / "m" / "model.onnx")], tmp_path / "float.onnx", views=2)
    calibration, faces = varied_faces(128, seed=1), varied_faces(40, seed=2)
    out = quantize_onnx(source, tmp_path / "int8.onnx", calibration)

    graph = onnx.load(str(out)).graph
    ops = [n.op_type for n in graph.node]
    assert ops.count("QuantizeLinear") >= 2 and ops.count("DequantizeLinear") >= 4
    eight_bit = [t for t in graph.initializer if t.data_type == onnx.TensorProto.UINT8]  # uint8 weights (session 20)
    assert {tuple(t.dims) for t in eight_bit} >= {(8, 1, 3, 3), (8, NUM_CLASSES)}

    exact = FacialExpressionModel(source).predict_proba(faces, calibrated=False)
    quick = FacialExpressionModel(out).predict_proba(faces, calibrated=False)
    assert np.abs(quick - exact).max() < 0.02
    np.testing.assert_array_equal(quick.argmax(1), exact.argmax(1))
    assert np.abs(quick - exact).max() > 0  # it did change the arithmetic

    # the same check fails for ranges fitted on the wrong faces (here: 0..1 instead of 0..255)
    wrong = FacialExpressionModel(quantize_onnx(source, tmp_path / "wrong.onnx", calibration / 255))
    assert np.abs(wrong.predict_proba(faces, calibrated=False) - exact).max() > 0.02


@pytest.mark.parametrize("batches, member_views, stride", [
    (8, 2, 8),    # `fast` (one network, mirrored): all 512 faces at once, as before strides existed
    (8, 6, 2),    # 3 members x 2 views: 1024 // (6 x 64) = 2 batches a stride
    (8, 8, 2), (12, 3, 4),  # the largest divisor of the batch count within the limit (5 here)
    (7, 8, 1), (8, 100, 1),  # a prime count, or a graph too big for one batch: one batch at a time
])
def test_calibration_stride_stays_within_the_memory_limit_and_divides_the_batches(batches, member_views, stride):
    assert calibration_stride(batches, 64, member_views) == stride


def test_strided_calibration_fits_ranges_on_every_stride(tmp_path):
    source = build_ensemble([conv_member(tmp_path / "m" / "model.onnx")], tmp_path / "float.onnx", views=2)
    faces = varied_faces(40, seed=2)

    def scores(path):
        return FacialExpressionModel(path).predict_proba(faces, calibrated=False)

    exact = scores(source)
    # full-range faces between two strides of dim ones: ranges from the first or the last stride alone clip
    calibration = np.concatenate([varied_faces(64, seed=1) / 8, varied_faces(64, seed=3), varied_faces(64, seed=4) / 8])
    strided = scores(quantize_onnx(source, tmp_path / "strided.onnx", calibration, member_views=16))  # 3 strides
    whole = scores(quantize_onnx(source, tmp_path / "whole.onnx", calibration))  # one stride
    assert np.abs(strided - whole).max() < 0.005 and np.abs(strided - exact).max() < 0.03
    for part in (calibration[:64], calibration[128:]):
        assert np.abs(scores(quantize_onnx(source, tmp_path / "part.onnx", part)) - exact).max() > 0.05


def test_calibration_faces_come_from_training_outside_the_holdout(tiny_csv):
    data = tiny_csv({"Training": 140, "PublicTest": 30})
    train, held = load_dataset(data).split("Training").holdout(0.1, 42)
    faces = calibration_faces(data, count=50)
    assert faces.shape == (50, IMAGE_SIZE, IMAGE_SIZE, 1) and faces.dtype == np.float32
    outside = {f.tobytes() for f in train.images.astype(np.float32)}
    inside = {f.tobytes() for f in held.images.astype(np.float32)}
    picked = {f[..., 0].tobytes() for f in faces}
    assert len(picked) == 50 and picked <= outside and not picked & inside
    np.testing.assert_array_equal(calibration_faces(data, count=50), faces)  # seeded
    assert len(calibration_faces(data)) == len(train)  # fewer faces than asked for: all of them


def test_cli_ensemble_int8_writes_a_quantized_model_folder(tmp_path, tiny_csv, capsys):
    data = tiny_csv({"Training": 70, "PublicTest": 14})
    member = conv_member(tmp_path / "m" / "model.onnx")
    out = tmp_path / "fast2"
    assert main(["ensemble", str(member), "--out", str(out), "--data", str(data), "--views", "2", "--int8"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["int8"] is True and metrics["views_in_graph"] == 2
    assert "int8" in (out / "MODEL_CARD.md").read_text()
    assert {p.name for p in out.iterdir()} >= {"model.onnx", "calibration.json"} and not (out / "float.onnx").exists()
    assert "QuantizeLinear" in {n.op_type for n in onnx.load(str(out / "model.onnx")).graph.node}
    plain = tmp_path / "plain"
    assert main(["ensemble", str(member), "--out", str(plain), "--data", str(data), "--views", "2"]) == 0
    assert json.loads((plain / "metrics.json").read_text())["int8"] is False
    assert "QuantizeLinear" not in {n.op_type for n in onnx.load(str(plain / "model.onnx")).graph.node}


def test_cli_ensemble_int8_calibrates_in_strides_sized_by_members_and_views(tmp_path, tiny_csv, monkeypatch):
    import ferkit.training.quantize as quantize

    seen = []
    real = quantize.quantize_onnx
    monkeypatch.setattr(quantize, "quantize_onnx", lambda source, out, faces, member_views=1:
                        seen.append(member_views) or real(source, out, faces, member_views=member_views))
    data = tiny_csv({"Training": 70, "PublicTest": 14})
    members = [str(conv_member(tmp_path / name / "model.onnx", seed)) for name, seed in (("a", 3), ("b", 4), ("c", 5))]
    assert main(["ensemble", *members, "--out", str(tmp_path / "e"), "--data", str(data), "--views", "4",
                 "--int8"]) == 0
    assert seen == [12]  # 3 members x 4 views
    assert main(["ensemble", *members, "--out", str(tmp_path / "f"), "--data", str(data), "--views", "4", "1", "2",
                 "--int8"]) == 0
    assert seen == [12, 7]  # each member's own views, summed


def test_a_per_member_views_graph_keeps_its_tail_float_in_int8(tmp_path):
    members = [conv_member(tmp_path / "a" / "model.onnx", seed=3), batchnorm_member(tmp_path / "b" / "model.onnx")]
    source = build_ensemble(members, tmp_path / "float.onnx", weights=[0.7, 0.3], views=[4, 1])
    out = quantize_onnx(source, tmp_path / "int8.onnx", varied_faces(128, seed=1), member_views=5)
    graph = onnx.load(str(out)).graph
    quantized = {n.input[0] for n in graph.node if n.op_type == "QuantizeLinear"}
    after_softmax = set()
    for node in graph.node:
        if node.op_type == "Softmax" or after_softmax.intersection(node.input):
            after_softmax.update(node.output)
    assert quantized and not after_softmax.intersection(quantized)
    faces = varied_faces(8, seed=2)
    p = FacialExpressionModel(out).predict_proba(faces, calibrated=False)
    np.testing.assert_allclose(p.sum(1), 1, atol=1e-5)
    np.testing.assert_allclose(p, FacialExpressionModel(source).predict_proba(faces, calibrated=False), atol=0.05)


@pytest.mark.shared
def test_int8_fast_agrees_with_float_fast_on_real_faces(shared_dir, tmp_path):
    data = shared_dir / "data/fer2013/fer2013.csv.gz"
    faces = load_dataset(data).split("PublicTest").images[:400]
    network = Path(__file__).resolve().parents[1] / "members/m1-fast-e66-s42"  # the float net behind `fast`
    source = build_ensemble([network], tmp_path / "float.onnx", views=2)
    quick = FacialExpressionModel(quantize_onnx(source, tmp_path / "int8.onnx", calibration_faces(data, 256)))
    exact = FacialExpressionModel(source)
    p, q = exact.predict_proba(faces, calibrated=False), quick.predict_proba(faces, calibrated=False)
    assert (p.argmax(1) == q.argmax(1)).mean() >= 0.95
    assert np.abs(p - q).mean() < 0.02


def test_an_int8_graph_is_not_quantized_twice(tmp_path):
    source = build_ensemble([conv_member(tmp_path / "m" / "model.onnx")], tmp_path / "float.onnx", views=1)
    once = quantize_onnx(source, tmp_path / "int8.onnx", varied_faces(64, seed=1))
    with pytest.raises(ModelError, match="already int8"):
        quantize_onnx(once, tmp_path / "twice.onnx", varied_faces(64, seed=1))


def test_subtracting_a_constant_becomes_adding_its_negation_with_the_same_scores(tmp_path):
    source = batchnorm_member(tmp_path / "m" / "model.onnx")
    model = onnx.load(str(source))
    from onnx import numpy_helper
    original = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    assert subtractions_as_additions(model) == 2
    ops = [n.op_type for n in model.graph.node]
    assert "Sub" not in ops and ops.count("Add") == 4  # each BatchNorm's mean, then its shift
    constants = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    centring = next(n for n in model.graph.node if n.op_type == "Add")
    np.testing.assert_array_equal(constants[centring.input[1]], -original["mean"])
    assert "mean" not in constants  # nothing reads it any more (ONNX Runtime would warn at each load)
    rewritten = tmp_path / "rewritten.onnx"
    onnx.save(model, str(rewritten))
    faces = varied_faces(16, seed=4)
    np.testing.assert_allclose(FacialExpressionModel(rewritten).predict_proba(faces, calibrated=False),
                               FacialExpressionModel(source).predict_proba(faces, calibrated=False), atol=1e-6)


def test_biases_held_as_rows_or_images_become_vectors(tmp_path):
    from onnx import helper, numpy_helper
    row = numpy_helper.from_array(np.arange(7, dtype=np.float32).reshape(1, 7) - 3, "row")
    image = numpy_helper.from_array(np.array([2.0, -1.0], np.float32).reshape(1, 2, 1, 1), "image")
    flat = numpy_helper.from_array(np.array([5.0, 6.0], np.float32), "flat")
    matrix = numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(2, 3), "matrix")  # one bias per row
    nodes = [helper.make_node("Gemm", ["x", "w", "row"], ["y"]), helper.make_node("Conv", ["a", "k", "image"], ["b"]),
             helper.make_node("Conv", ["c", "k", "flat"], ["d"]), helper.make_node("Add", ["y", "row"], ["e"]),
             helper.make_node("Gemm", ["x", "w", "matrix"], ["f"])]
    model = helper.make_model(helper.make_graph(nodes, "g", [], [], [row, image, flat, matrix]))
    assert flat_biases(model) == 2
    shapes = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    np.testing.assert_array_equal(shapes["row"], [-3, -2, -1, 0, 1, 2, 3])
    np.testing.assert_array_equal(shapes["image"], [2, -1])
    np.testing.assert_array_equal(shapes["flat"], [5, 6])
    assert shapes["matrix"].shape == (2, 3)  # a bias per row and column is not a per-channel vector: left alone


def test_a_subtracted_constant_that_another_node_reads_is_kept(tmp_path):
    source = batchnorm_member(tmp_path / "m" / "model.onnx")
    model = onnx.load(str(source))
    from onnx import helper
    model.graph.node.append(helper.make_node("Add", ["z", "d_mean"], ["unused"]))  # d_mean read twice
    assert subtractions_as_additions(model) == 2
    names = {t.name for t in model.graph.initializer}
    assert "d_mean" in names and "d_mean_negated" in names
    assert "mean" not in names and "mean_negated" in names


def test_a_subtraction_of_two_activations_is_left_alone(tmp_path):
    source = batchnorm_member(tmp_path / "m" / "model.onnx")
    model = onnx.load(str(source))
    node = next(n for n in model.graph.node if n.op_type == "Sub")
    node.input[1] = "x"  # c - x: both computed, nothing to negate ahead of time
    assert subtractions_as_additions(model) == 1  # the dense layer's d - d_mean only
    assert [(n.op_type, list(n.input)) for n in model.graph.node if n.op_type == "Sub"] == [("Sub", ["c", "x"])]


def test_batchnorm_folds_into_the_int8_convolution(tmp_path):
    """The Sub/Mul/Add after the Conv disappear into its int8 weights and bias (the dense layer's mean becomes
    the bias of a Gemm, quantized per channel); scores stay the float graph's."""
    source = build_ensemble([batchnorm_member(tmp_path / "m" / "model.onnx")], tmp_path / "float.onnx", views=1)
    out = quantize_onnx(source, tmp_path / "int8.onnx", varied_faces(128, seed=1))
    graph = onnx.load(str(out)).graph
    ops = [n.op_type for n in graph.node]
    assert "Sub" not in ops
    # left: the input's 1/255, and the dense BatchNorm's scale and shift (a Mul does not fold into a Gemm);
    # ONNX Runtime drops a single member's weight of 1
    assert ops.count("Mul") == 2 and ops.count("Add") == 1
    conv = next(n for n in graph.node if n.op_type == "Conv")
    assert len(conv.input) == 3  # the BatchNorm's mean and shift became its bias
    gemm = next(n for n in graph.node if n.op_type == "Gemm")
    assert len(gemm.input) == 3
    faces = varied_faces(40, seed=2)
    exact = FacialExpressionModel(source).predict_proba(faces, calibrated=False)
    quick = FacialExpressionModel(out).predict_proba(faces, calibrated=False)
    assert np.abs(quick - exact).max() < 0.02


def test_weights_are_uint8_so_avx2_cpus_without_vnni_do_not_saturate(tmp_path):
    """Every quantized weight, activation and bias of the convolution and the dense layer: no int8 tensor at all.
    uint8 x int8 products summed in int16 saturate on AVX2 CPUs without VNNI (a Zen 3 lost a point with them)."""
    from onnx import TensorProto, numpy_helper

    source = build_ensemble([batchnorm_member(tmp_path / "m" / "model.onnx")], tmp_path / "float.onnx", views=1)
    graph = onnx.load(str(quantize_onnx(source, tmp_path / "int8.onnx", varied_faces(128, seed=1)))).graph
    initializers = {i.name: i for i in graph.initializer}
    producers = {o: n for n in graph.node for o in n.output}
    for layer in (n for n in graph.node if n.op_type in ("Conv", "Gemm")):
        weight = producers[layer.input[1]]  # DequantizeLinear(quantized weight, scale, zero point)
        assert weight.op_type == "DequantizeLinear"
        assert initializers[weight.input[0]].data_type == TensorProto.UINT8
        assert numpy_helper.to_array(initializers[weight.input[0]]).max() > 127  # the upper half in use
    quantized = [i for i in graph.initializer if i.data_type in (TensorProto.INT8, TensorProto.UINT8)]
    assert len(quantized) >= 4 and all(i.data_type == TensorProto.UINT8 for i in quantized)


def test_the_ensemble_tail_from_each_softmax_on_stays_float(tmp_path):
    members = [conv_member(tmp_path / "a" / "model.onnx", seed=3), batchnorm_member(tmp_path / "b" / "model.onnx")]
    source = build_ensemble(members, tmp_path / "float.onnx", weights=[0.7, 0.3], views=2)
    model = onnx.load(str(source))
    names = tail_nodes(model)
    by_name = {n.name: n.op_type for n in model.graph.node}
    assert sorted(by_name[n] for n in names) == ["Mul", "Mul", "ReduceMean", "Reshape", "Softmax", "Softmax", "Sum"]
    assert all(by_name[n] != "Add" for n in names)  # the BatchNorm ahead of the softmax is not part of it
    assert len(set(by_name)) == len(model.graph.node)  # every node has its own name now

    out = quantize_onnx(source, tmp_path / "int8.onnx", varied_faces(128, seed=1), member_views=4)
    graph = onnx.load(str(out)).graph
    made_by = {o: n.op_type for n in graph.node for o in n.output}
    quantized = [n.input[0] for n in graph.node if n.op_type == "QuantizeLinear"]
    assert {"Conv", "Flatten"} <= {made_by.get(t) for t in quantized}  # the networks themselves are int8
    after_softmax = set()
    for node in graph.node:
        if node.op_type == "Softmax" or after_softmax.intersection(node.input):
            after_softmax.update(node.output)
    assert len(after_softmax) >= 7 and not after_softmax.intersection(quantized)
    # the mixed probabilities are not rounded to uint8 steps: the output sums to one in float
    p = FacialExpressionModel(out).predict_proba(varied_faces(8, seed=2), calibrated=False)
    np.testing.assert_allclose(p.sum(1), 1, atol=1e-5)
