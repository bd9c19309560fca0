"""Int8 graphs matched to the CPU: uint8 weights as shipped, int8 weights on VNNI CPUs, same scores."""

from __future__ import annotations

import numpy as np
import pytest

from ferkit.inference import int8
from ferkit.inference.classifier import FacialExpressionModel
from ferkit.inference.int8 import cpu_has_vnni, graph_for_this_cpu, signed_weights

onnx = pytest.importorskip("onnx")

INTEL_FLAGS = "fpu vme avx2 avx512f avx512bw avx512_vnni avx512_bf16"  # a Sapphire Rapids-like line
ZEN3_FLAGS = "fpu vme avx avx2 fma bmi2 sha_ni vaes"  # AVX2, no VNNI


def cpuinfo(tmp_path, flags: str, cores: int = 2):
    path = tmp_path / "cpuinfo"
    path.write_text("".join(f"processor\t: {i}\nmodel name\t: Some CPU avx512_vnni edition\nflags\t\t: {flags}\n\n"
                            for i in range(cores)))
    return path


@pytest.mark.parametrize("flags, machine, expected", [
    (INTEL_FLAGS, "x86_64", True),
    ("fpu avx2 avx_vnni", "x86_64", True),  # Alder Lake's AVX-VNNI
    (INTEL_FLAGS, "AMD64", True),
    (ZEN3_FLAGS, "x86_64", False),
    ("fpu avx2 avx512_vnnix", "x86_64", False),  # whole flags only
    (INTEL_FLAGS, "aarch64", False),  # not an x86 CPU: not measured, so the graph runs as shipped
])
def test_vnni_is_read_from_the_flags_line_of_an_x86_cpu(tmp_path, flags, machine, expected):
    assert cpu_has_vnni(cpuinfo(tmp_path, flags), machine=machine) is expected


def test_an_unreadable_or_flagless_cpuinfo_means_no_vnni(tmp_path):
    assert cpu_has_vnni(tmp_path / "absent", machine="x86_64") is False
    (tmp_path / "odd").write_text("model name\t: avx512_vnni\n")  # the name is not the flags
    assert cpu_has_vnni(tmp_path / "odd", machine="x86_64") is False


def quantized_graph(tmp_path):
    from test_quantize import conv_member, varied_faces

    from ferkit.training.ensemble import build_ensemble
    from ferkit.training.quantize import quantize_onnx

    source = build_ensemble([conv_member(tmp_path / "m" / "model.onnx")], tmp_path / "float.onnx", views=2)
    return quantize_onnx(source, tmp_path / "int8.onnx", varied_faces(128, seed=1)), varied_faces(40, seed=2)


def dequantized_weights(model) -> dict[str, np.ndarray]:
    """(q - zero point) of every weight that a DequantizeLinear reads from an initializer, by weight name
    (a per-channel zero point lies along the node's axis)."""
    from onnx import helper, numpy_helper

    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    out = {}
    for node in (n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits):
        q, zero = inits[node.input[0]].astype(np.int32), inits[node.input[2]].astype(np.int32)
        axis = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "axis"), 1)
        shape = [1] * q.ndim
        if zero.ndim:
            shape[axis] = -1
        out[node.input[0]] = q - zero.reshape(shape)
    return out


def weights_of(model, ops) -> list[str]:
    """The quantized initializers whose DequantizeLinear feeds a node of one of these types."""
    inits = {i.name for i in model.graph.initializer}
    feeds = {o: n.input[0] for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    return [feeds[x] for n in model.graph.node if n.op_type in ops for x in n.input if feeds.get(x) in inits]


def test_uint8_weights_become_int8_with_the_same_dequantized_values(tmp_path):
    from onnx import TensorProto

    path, _ = quantized_graph(tmp_path)
    model = onnx.load(str(path))
    before = dequantized_weights(model)
    uint8 = weights_of(model, ("Conv", "MatMul"))
    assert len(uint8) == 2  # the convolution's and the dense layer's
    scalar = weights_of(model, ("Mul",))  # the input's 1/255, uint8 with zero point 0: left as it is
    assert signed_weights(model) == 2
    after = dequantized_weights(model)
    assert sorted(after) == sorted(before)
    for name in before:
        np.testing.assert_array_equal(after[name], before[name])
    types = {i.name: i.data_type for i in model.graph.initializer}
    assert all(types[name] == TensorProto.INT8 for name in uint8)
    zero_points = [n.input[2] for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in uint8]
    assert all(types[z] == TensorProto.INT8 and not onnx.numpy_helper.to_array(
        next(i for i in model.graph.initializer if i.name == z)).any() for z in zero_points)
    assert types[scalar[0]] == TensorProto.UINT8
    assert signed_weights(model) == 0  # nothing left to rewrite


def test_activations_and_asymmetric_weights_keep_uint8(tmp_path):
    from onnx import TensorProto, numpy_helper

    path, _ = quantized_graph(tmp_path)
    model = onnx.load(str(path))
    inits = {i.name: i for i in model.graph.initializer}
    conv, dense = weights_of(model, ("Conv",))[0], weights_of(model, ("MatMul",))[0]
    shifted = inits[next(n.input[2] for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] == conv)]
    shifted.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(shifted) - 1, shifted.name))  # zero point 127
    scalar = weights_of(model, ("Mul",))[0]  # a Mul's input with zero point 128: not a Conv/MatMul weight
    centred = inits[next(n.input[2] for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] == scalar)]
    centred.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(centred) + 128, centred.name))
    activation_zero_points = {n.input[2] for n in model.graph.node
                              if n.op_type in ("DequantizeLinear", "QuantizeLinear") and n.input[0] not in inits}
    assert activation_zero_points
    assert signed_weights(model) == 1
    types = {i.name: i.data_type for i in model.graph.initializer}
    assert types[conv] == TensorProto.UINT8 and types[dense] == TensorProto.INT8 and types[scalar] == TensorProto.UINT8
    assert all(types[z] == TensorProto.UINT8 for z in activation_zero_points)


def test_only_a_vnni_cpu_gets_the_rewritten_graph(tmp_path):
    path, _ = quantized_graph(tmp_path)
    assert graph_for_this_cpu(path, vnni=False) == str(path)
    rewritten = graph_for_this_cpu(path, vnni=True)
    assert isinstance(rewritten, bytes)
    assert signed_weights(onnx.load_from_string(rewritten)) == 0 and signed_weights(onnx.load(str(path))) == 2
    assert graph_for_this_cpu(tmp_path / "float.onnx", vnni=True) == str(tmp_path / "float.onnx")  # no int8


def test_the_model_loader_asks_the_cpu(tmp_path, monkeypatch):
    import onnxruntime as ort

    path, faces = quantized_graph(tmp_path)
    handed = []
    real = ort.InferenceSession
    monkeypatch.setattr(ort, "InferenceSession", lambda graph, *a, **k: handed.append(graph) or real(graph, *a, **k))
    for vnni in (False, True):
        monkeypatch.setattr(int8, "cpu_has_vnni", lambda vnni=vnni: vnni)
        FacialExpressionModel(path).predict_proba(faces)
    assert handed[0] == str(path) and isinstance(handed[1], bytes)


@pytest.mark.skipif(not cpu_has_vnni(), reason="int8 x uint8 kernels saturate without VNNI; the exactness of the "
                    "rewrite is checked on the weights above on every CPU")
def test_on_this_vnni_cpu_the_rewritten_bundled_graphs_score_as_shipped(monkeypatch):
    rng = np.random.default_rng(7)
    faces = rng.uniform(0, 255, (64, 48, 48)).astype(np.float32)
    faces[:, :, :24] *= 0.5  # asymmetric, so the mirrored view inside the graph counts
    for name in ("fast", "accurate"):
        monkeypatch.setattr(int8, "cpu_has_vnni", lambda: False)
        shipped = FacialExpressionModel.load(name).predict_proba(faces, calibrated=False)
        monkeypatch.setattr(int8, "cpu_has_vnni", lambda: True)
        rewritten = FacialExpressionModel.load(name).predict_proba(faces, calibrated=False)
        np.testing.assert_allclose(rewritten, shipped, atol=1e-6)
