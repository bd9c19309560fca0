"""Int8 graphs matched to the CPU at hand.

ferkit's int8 graphs hold symmetric uint8 weights (zero point 128). That is exact on every x86 CPU:
without VNNI, ONNX Runtime's uint8 x int8 kernels add pairs of products in int16 and saturate,
which cost the shipped graphs about a point (session 20, runs/s20-int8-avx2-plan.md). With VNNI the
uint8 x int8 kernels are exact and 2.2-2.7x faster than uint8 x uint8 (runs/s21-int8-vnni-plan.md),
so there the weights are rewritten to int8 in memory (q - 128, zero point 0): the same dequantized
weights, so the same scores, at the faster kernels' speed.
"""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np

CPUINFO = Path("/proc/cpuinfo")
VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni"})
WEIGHT_READERS = frozenset({"Conv", "Gemm", "MatMul"})


def cpu_has_vnni(cpuinfo: Path = CPUINFO, machine: str | None = None) -> bool:
    """True on an x86 CPU whose flags (Linux's /proc/cpuinfo) include AVX-512 VNNI or AVX-VNNI.

    Anything unknown (another OS, ARM, unreadable file) answers False: the graph then runs as shipped,
    which is exact everywhere, only slower.
    """
    machine = (machine or platform.machine()).lower()
    if machine not in ("x86_64", "amd64"):
        return False
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            return bool(VNNI_FLAGS & set(line.partition(":")[2].split()))
    return False


def signed_weights(model) -> int:
    """Rewrite, in place, every symmetric uint8 weight of a Conv, Gemm or MatMul as int8 with zero point 0;
    returns how many. Asymmetric ones are left alone (their int8 form would need a nonzero weight zero
    point, which the fast kernels do not take), and so is every activation."""
    from onnx import TensorProto, numpy_helper

    initializers = {tensor.name: tensor for tensor in model.graph.initializer}
    readers: dict[str, list[tuple[str, int]]] = {}
    for node in model.graph.node:
        for slot, name in enumerate(node.input):
            readers.setdefault(name, []).append((node.op_type, slot))
    rewritten = 0
    for node in model.graph.node:
        # only a weight, read by nothing else, whose dequantized values only a Conv, Gemm or MatMul takes as
        # its second input: other int8 x uint8 pairs (QLinearMul, say) would lose their fused kernel
        if node.op_type != "DequantizeLinear" or len(node.input) < 3 \
                or len(readers[node.input[0]]) > 1 or len(readers[node.input[2]]) > 1 \
                or not all(op in WEIGHT_READERS and slot == 1 for op, slot in readers.get(node.output[0], [("", 0)])):
            continue
        weight, zero_point = initializers.get(node.input[0]), initializers.get(node.input[2])
        if weight is None or zero_point is None or weight.data_type != TensorProto.UINT8 \
                or zero_point.data_type != TensorProto.UINT8:
            continue
        zeros = numpy_helper.to_array(zero_point)
        if not np.all(zeros == 128):
            continue
        values = numpy_helper.to_array(weight).astype(np.int16) - 128
        weight.CopyFrom(numpy_helper.from_array(values.astype(np.int8), weight.name))
        zero_point.CopyFrom(numpy_helper.from_array(np.zeros(zeros.shape, np.int8), zero_point.name))
        rewritten += 1
    return rewritten


def graph_for_this_cpu(path: Path, vnni: bool | None = None) -> str | bytes:
    """What to hand onnxruntime.InferenceSession: the file's path, or on a VNNI CPU the serialized
    graph with its uint8 weights as int8 when it has any."""
    if not (cpu_has_vnni() if vnni is None else vnni):
        return str(path)
    try:
        import onnx
    except ImportError:  # an environment without onnx still serves, at the uint8 kernels' speed
        return str(path)
    try:
        model = onnx.load(str(path))
    except Exception:  # not an ONNX file: let onnxruntime report it the usual way
        return str(path)
    return model.SerializeToString() if signed_weights(model) else str(path)
