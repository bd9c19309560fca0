"""Several trained members averaged inside one ONNX graph: the `accurate` model.

The graph takes the same input as every member (N, 48, 48, 1 raw pixels) and returns the
weighted mean of the members' probabilities, so it drops in wherever one model does. With
`views` 2 or 4, the first two or all four test-time views of `classifier.tta_views` (as is,
mirrored, zoomed 10%, zoomed and mirrored) are built inside the graph too, and their outputs
averaged: one call, no flag. Each view costs one more pass of every member. `views` may also give
each member its own count (a list): cheap members gain from four views where wide ones gain
nothing from a second (issue 13's pick, session 42).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ..errors import MediaError, ModelError
from ..files import atomic_output, check_output_folder
from ..inference.classifier import (CALIBRATION_FILE, CARD_FILE, METRICS_FILE, ONNX_FILE, FacialExpressionModel,
                                    check_classifier_io)
from ..labels import IMAGE_SIZE, NUM_CLASSES
from .quantize import CALIBRATION_FACES

INPUT, OUTPUT = "face", "expression"
VIEW_COUNTS = (1, 2, 4)
VIEW_NAMES = {2: "as is and mirrored", 4: "as is, mirrored, zoomed 10%, zoomed and mirrored"}
OPSET = 20


def member_onnx(spec: str | Path) -> Path:
    """A member as an .onnx path: a bundled name, a run/model folder, or the file itself."""
    from ..inference.classifier import resolve_model

    path = resolve_model(spec)
    path = path / ONNX_FILE if path.is_dir() else path
    if path.suffix != ".onnx" or not path.is_file():
        raise ModelError(f"{spec}: an ensemble member needs an ONNX file ({ONNX_FILE} in its folder)")
    return path


def check_weights(weights: list[float] | None, members: int) -> np.ndarray:
    """The members' weights normalised to sum 1 (equal by default); ModelError for anything else than
    `members` finite non-negative numbers, not all 0 (NaN or inf would make every score NaN)."""
    if not members:
        raise ModelError("an ensemble needs at least one member")
    if weights is None:
        return np.full(members, 1.0 / members)
    array = np.asarray(weights, np.float64)
    if len(array) != members or not np.isfinite(array).all() or np.any(array < 0) or array.sum() <= 0:
        raise ModelError(f"ensemble weights {array.tolist()}: expected {members} finite non-negative numbers, "
                         "not all 0")
    return array / array.sum()


def declared_shape(value) -> tuple | None:
    """An ONNX graph input's or output's shape: sizes, axis names, None for an unnamed axis; None if undeclared."""
    tensor = value.type.tensor_type
    if not tensor.HasField("shape"):
        return None
    return tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tensor.shape.dim)


def check_member(path: Path, member) -> None:
    """ModelError unless the member is a 48x48 -> 7 classifier, the check FacialExpressionModel makes at load:
    another network would otherwise build into a graph that fails at its first face."""
    from onnx import TensorProto

    weights = {tensor.name for tensor in member.graph.initializer}
    inputs = [(declared_shape(i), TensorProto.DataType.Name(i.type.tensor_type.elem_type).lower())
              for i in member.graph.input if i.name not in weights]
    check_classifier_io(path, inputs, [declared_shape(o) for o in member.graph.output])


def opset_of(model) -> int:
    return max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def _tta_nodes(helper, TensorProto, source: str, views: int) -> tuple[list, list, str]:
    """Nodes that stack the first `views` (2 or 4) TTA views of `source` along the batch axis (views x N)."""
    crop = IMAGE_SIZE // 20
    scale = IMAGE_SIZE / (IMAGE_SIZE - 2 * crop)
    init = [
        helper.make_tensor("tta_flip_starts", TensorProto.INT64, [1], [-1]),
        helper.make_tensor("tta_flip_ends", TensorProto.INT64, [1], [-(2**62)]),
        helper.make_tensor("tta_axis_w", TensorProto.INT64, [1], [2]),
        helper.make_tensor("tta_step_back", TensorProto.INT64, [1], [-1]),
        helper.make_tensor("tta_crop_starts", TensorProto.INT64, [2], [crop, crop]),
        helper.make_tensor("tta_crop_ends", TensorProto.INT64, [2], [IMAGE_SIZE - crop, IMAGE_SIZE - crop]),
        helper.make_tensor("tta_axes_hw", TensorProto.INT64, [2], [1, 2]),
        # NCHW scales: Resize's linear mode works on the two innermost axes
        helper.make_tensor("tta_scales", TensorProto.FLOAT, [4], [1.0, 1.0, scale, scale]),
    ]
    mirror = helper.make_node("Slice", [source, "tta_flip_starts", "tta_flip_ends", "tta_axis_w", "tta_step_back"],
                              ["tta_mirror"])
    if views == 2:
        return [mirror, helper.make_node("Concat", [source, "tta_mirror"], ["tta_views"], axis=0)], init[:4], "tta_views"
    nodes = [
        mirror,
        helper.make_node("Slice", [source, "tta_crop_starts", "tta_crop_ends", "tta_axes_hw"], ["tta_crop"]),
        helper.make_node("Transpose", ["tta_crop"], ["tta_crop_nchw"], perm=[0, 3, 1, 2]),
        # half_pixel + linear is cv2.resize's INTER_LINEAR when enlarging
        helper.make_node("Resize", ["tta_crop_nchw", "", "tta_scales"], ["tta_zoom_nchw"], mode="linear",
                         coordinate_transformation_mode="half_pixel"),
        helper.make_node("Transpose", ["tta_zoom_nchw"], ["tta_zoom"], perm=[0, 2, 3, 1]),
        helper.make_node("Slice", ["tta_zoom", "tta_flip_starts", "tta_flip_ends", "tta_axis_w", "tta_step_back"],
                         ["tta_zoom_mirror"]),
        helper.make_node("Concat", [source, "tta_mirror", "tta_zoom", "tta_zoom_mirror"], ["tta_views"], axis=0),
    ]
    return nodes, init, "tta_views"


def view_counts(views: int | list[int], members: int) -> list[int]:
    """Each member's number of test-time views: one count for all, or one per member (ModelError otherwise)."""
    counts = [views] * members if isinstance(views, (int, np.integer)) else list(views)
    if len(counts) != members:
        raise ModelError(f"{len(counts)} view counts for {members} members: give one, or one per member")
    for count in counts:
        if count not in VIEW_COUNTS:
            raise ModelError(f"{count} test-time views: expected one of {', '.join(map(str, VIEW_COUNTS))}")
    return [int(count) for count in counts]


def views_summary(counts: list[int]) -> int | list[int]:
    """What metrics.json's `views_in_graph` holds: the one count all members share, or the list."""
    return counts[0] if len(set(counts)) == 1 else counts


def build_ensemble(members: list[str | Path], out: str | Path, weights: list[float] | None = None,
                   views: int | list[int] = 4) -> Path:
    """Write one ONNX file whose output is sum_i w_i * member_i(views), averaged over the views (one count for
    all members, or a list with each member's)."""
    from onnx import TensorProto, helper

    paths = [member_onnx(m) for m in members]
    weights = check_weights(weights, len(paths))
    counts = view_counts(views, len(paths))
    if len(set(counts)) > 1:
        return _build_per_member_views(paths, out, weights, counts)
    views = counts[0]

    nodes, inits = [], []
    source = INPUT
    tta = views > 1
    if tta:
        tta_nodes, tta_init, source = _tta_nodes(helper, TensorProto, INPUT, views)
        nodes += tta_nodes
        inits += tta_init
    summands = []
    for i, path in enumerate(paths):
        member_nodes, member_inits, member_output = _member_nodes(path, i, source)
        nodes += member_nodes
        inits += member_inits
        inits.append(helper.make_tensor(f"w{i}", TensorProto.FLOAT, [], [float(weights[i])]))
        nodes.append(helper.make_node("Mul", [member_output, f"w{i}"], [f"weighted{i}"]))
        summands.append(f"weighted{i}")
    mixed = "mixed" if tta else OUTPUT
    nodes.append(helper.make_node("Sum", summands, [mixed]))
    if tta:
        inits.append(helper.make_tensor("tta_shape", TensorProto.INT64, [3], [views, -1, NUM_CLASSES]))
        inits.append(helper.make_tensor("tta_axis0", TensorProto.INT64, [1], [0]))
        nodes.append(helper.make_node("Reshape", [mixed, "tta_shape"], ["per_view"]))
        nodes.append(helper.make_node("ReduceMean", ["per_view", "tta_axis0"], [OUTPUT], keepdims=0))
    return _save_graph(nodes, inits, out)


def _member_nodes(path: Path, i: int, source: str) -> tuple[list, list, str]:
    """Member `i`'s nodes and weights, prefixed m{i}_, reading `source`; and the name of its output."""
    import onnx
    from onnx import compose

    member = onnx.load(str(path))
    check_member(path, member)
    if opset_of(member) != OPSET:
        member = onnx.version_converter.convert_version(member, OPSET)
    member = compose.add_prefix(member, f"m{i}_")
    graph = member.graph
    member_input, member_output = graph.input[0].name, graph.output[0].name
    for node in graph.node:  # feed the shared (view-stacked) input to the member
        node.input[:] = [source if name == member_input else name for name in node.input]
    return list(graph.node), list(graph.initializer), member_output


def _build_per_member_views(paths: list[Path], out: str | Path, weights: np.ndarray, counts: list[int]) -> Path:
    """build_ensemble with each member's own number of views: the view stacks are built once each (the mirror
    shared), and every member's output is averaged over its own views before the weighted sum."""
    from onnx import TensorProto, helper

    nodes, inits, _ = _tta_nodes(helper, TensorProto, INPUT, max(counts))
    sources = {1: INPUT, max(counts): "tta_views"}
    if 2 in counts and max(counts) == 4:  # the as-is and mirrored pair, beside the four
        nodes.append(helper.make_node("Concat", [INPUT, "tta_mirror"], ["tta_views2"], axis=0))
        sources[2] = "tta_views2"
    inits.append(helper.make_tensor("tta_axis0", TensorProto.INT64, [1], [0]))
    summands = []
    for i, (path, count) in enumerate(zip(paths, counts)):
        member_nodes, member_inits, output = _member_nodes(path, i, sources[count])
        nodes += member_nodes
        inits += member_inits
        if count > 1:
            inits.append(helper.make_tensor(f"shape{i}", TensorProto.INT64, [3], [count, -1, NUM_CLASSES]))
            nodes.append(helper.make_node("Reshape", [output, f"shape{i}"], [f"per_view{i}"]))
            nodes.append(helper.make_node("ReduceMean", [f"per_view{i}", "tta_axis0"], [f"mean{i}"], keepdims=0))
            output = f"mean{i}"
        inits.append(helper.make_tensor(f"w{i}", TensorProto.FLOAT, [], [float(weights[i])]))
        nodes.append(helper.make_node("Mul", [output, f"w{i}"], [f"weighted{i}"]))
        summands.append(f"weighted{i}")
    nodes.append(helper.make_node("Sum", summands, [OUTPUT]))
    return _save_graph(nodes, inits, out)


def _save_graph(nodes: list, inits: list, out: str | Path) -> Path:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        nodes, "ferkit_ensemble",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["batch", IMAGE_SIZE, IMAGE_SIZE, 1])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", NUM_CLASSES])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="ferkit")
    model.ir_version = 9
    onnx.checker.check_model(model)
    with atomic_output(out) as partial:  # a failed save leaves no truncated graph behind
        onnx.save(model, str(partial))
    return Path(out)


def build_int8_ensemble(members: list[str | Path], out: str | Path, faces: np.ndarray,
                        weights: list[float] | None = None, views: int | list[int] = 4) -> Path:
    """`build_ensemble` quantized to int8 (`quantize.py`, activation ranges from `faces`); the float graph
    lives in a temporary folder, so nothing is left behind if quantizing fails."""
    import tempfile

    from .quantize import quantize_onnx

    with tempfile.TemporaryDirectory(prefix="ferkit-float-") as tmp:
        float_graph = build_ensemble(members, Path(tmp) / ONNX_FILE, weights, views)
        return quantize_onnx(float_graph, out, faces, member_views=sum(view_counts(views, len(members))))


ENSEMBLE_FILES = (ONNX_FILE, CALIBRATION_FILE, METRICS_FILE, "confusion.png", CARD_FILE)


STAGE_PREFIX = ".ensemble-"  # + the building process's id: a folder whose process is gone is swept


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def sweep_dead_stages(out_dir: Path) -> None:
    """Delete the staging folders that builds killed outright (kill -9, the OOM killer) left in `out_dir`."""
    for stage in out_dir.glob(f"{STAGE_PREFIX}*.partial"):
        pid = stage.name.removeprefix(STAGE_PREFIX).split("-", 1)[0]
        if stage.is_dir() and pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(stage, ignore_errors=True)


def member_labels(onnx_path: Path) -> str:
    """The labels a member learnt, as the classifier reads them (its folder's calibration or run; else fer2013)."""
    return FacialExpressionModel(onnx_path).labels


def make_ensemble(members: list[str], out_dir: str | Path, data: str | Path, weights: list[float] | None = None,
                  views: int | list[int] = 4, command: str = "", int8: bool = False) -> dict:
    """Build, calibrate and score an ensemble model folder: model.onnx, calibration.json, metrics.json,
    confusion.png and MODEL_CARD.md, like a trained run's. With `int8`, the graph is quantized
    (`quantize.py`) before the temperature is fitted, so the temperature is the int8 graph's. `views`: one count
    for every member, or one per member.

    The files are made in a hidden folder inside `out_dir` and moved in only when all are done: a
    failure leaves `out_dir` as it was (a model folder there keeps working), never a half-made model."""
    out_dir = Path(out_dir)
    member_paths = [member_onnx(m) for m in members]
    check_weights(weights, len(member_paths))
    view_counts(views, len(member_paths))  # before any file is made
    seen: dict[Path, str] = {}
    for member, path in zip(members, member_paths):
        if path.resolve() in seen:  # a slip (a shell glob and a name): a member is weighted with --weights
            raise ModelError(f"{member}: given twice (also as {seen[path.resolve()]}); weight a member with --weights")
        seen[path.resolve()] = member
    learnt = {member: member_labels(path) for member, path in zip(members, member_paths)}
    if len(set(learnt.values())) > 1:  # averaging scores of different label sets gives neither
        raise ModelError("members learnt different labels: " + ", ".join(f"{m} {labels}" for m, labels in
                                                                          learnt.items()))
    for member, path in zip(members, member_paths):
        if path.resolve().parent == out_dir.resolve():
            raise ModelError(f"{out_dir}: is the folder of member {member}; the ensemble would replace its "
                             f"{ONNX_FILE} (choose another --out)")
    check_output_folder(out_dir, ENSEMBLE_FILES)
    created = not out_dir.exists()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        sweep_dead_stages(out_dir)
        stage = Path(tempfile.mkdtemp(prefix=f"{STAGE_PREFIX}{os.getpid()}-", suffix=".partial", dir=out_dir))
    except OSError as exc:
        raise MediaError(f"{out_dir}: cannot be written ({exc.strerror or exc})") from None
    try:
        metrics = write_ensemble(members, member_paths, stage, out_dir.name, data, weights, views, command, int8,
                                 labels=next(iter(learnt.values())))
        try:
            for name in ENSEMBLE_FILES:
                os.replace(stage / name, out_dir / name)
        except OSError as exc:
            raise MediaError(f"{out_dir}: cannot be written ({exc.strerror or exc})") from None
    except BaseException:
        if created:  # nothing of this run is left, not even the folder
            shutil.rmtree(out_dir, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return metrics


def views_line(members: list[str], counts: list[int]) -> str:
    """The card's line on the test-time views inside the graph."""
    if len(set(counts)) > 1:
        return ("- Test-time views inside the graph, per member (1: as is; 2: + mirrored; 4: + zoomed 10%, zoomed "
                "and mirrored): " + ", ".join(f"`{m}` {c}" for m, c in zip(members, counts)) + "; one call, no flag.")
    if counts[0] > 1:
        return f"- Test-time views inside the graph: {VIEW_NAMES[counts[0]]}; one call, no flag."
    return "- No test-time views inside the graph."


def write_ensemble(members: list[str], member_paths: list[Path], folder: Path, name: str, data: str | Path,
                   weights: list[float] | None, views: int | list[int], command: str, int8: bool,
                   labels: str = "fer2013") -> dict:
    """make_ensemble's files, written in `folder`; `name` is the model's, for the card and the chart; `labels`:
    those every member learnt, which the ensemble is fitted and scored on."""
    import json
    import time

    from ..data import load_dataset
    from ..evaluation.calibration import calibrate, write_card_section
    from ..evaluation.metrics import classification_report, format_report
    from ..evaluation.plots import plot_confusion
    from ..inference.classifier import FacialExpressionModel

    counts = view_counts(views, len(members))
    if int8:
        from .quantize import calibration_faces

        build_int8_ensemble(member_paths, folder / ONNX_FILE, calibration_faces(data), weights, views)
    else:
        build_ensemble(member_paths, folder / ONNX_FILE, weights, views)
    calibration = calibrate(folder, data, report_split="PublicTest", labels=labels)
    dataset = load_dataset(data, labels)
    split = dataset.split("PublicTest")
    model = FacialExpressionModel(folder)
    report = classification_report(split.hard_labels, model.predict_proba(split.images).argmax(1), "PublicTest")
    metrics = {
        "model": "ensemble", "members": [str(m) for m in members],
        "weights": check_weights(weights, len(members)).round(4).tolist(),
        "views_in_graph": views_summary(counts), "int8": int8, "data": str(data), "val_split": "PublicTest",
        "evaluation": report, "accuracy": report["accuracy"], "calibration": calibration, "command": command,
        "onnx_bytes": (folder / ONNX_FILE).stat().st_size, "exported": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    (folder / METRICS_FILE).write_text(json.dumps(metrics, indent=2))
    plot_confusion(np.asarray(report["confusion"]), folder / "confusion.png",
                   f"{name} on PublicTest: {report['accuracy']:.2%}")
    lines = [
        f"# Model card: {name}", "",
        f"- An ensemble of {len(members)} networks averaged inside one ONNX graph "
        f"(weights {', '.join(f'{w:.3f}' for w in metrics['weights'])}): {', '.join(f'`{m}`' for m in members)}."
        if len(members) > 1 else f"- One network, `{members[0]}`, in an ONNX graph of its own.",
        views_line(members, counts),
        *([f"- Weights and activations int8 (static quantization; activation ranges from {CALIBRATION_FACES} "
           "Training faces outside the holdout)."] if int8 else []),
        "- Input 48x48 grayscale raw pixels (0..255), output 7 probabilities "
        "(angry, disgust, fear, happy, sad, surprise, neutral).",
        f"- Command: `{command}`",
        f"- **PublicTest accuracy: {report['accuracy']:.2%}**; macro F1 {report['macro_f1']:.3f}; "
        "members' epochs and the ensemble's make-up were picked on the Training holdout, never on PublicTest.",
        f"- Files: `model.onnx` ({metrics['onnx_bytes'] / 1e6:.1f} MB), `calibration.json`, `confusion.png`, "
        "`metrics.json`.",
        "", "```", format_report(report), "```", "", "![confusion matrix](confusion.png)", "",
    ]
    (folder / CARD_FILE).write_text("\n".join(lines))
    write_card_section(folder / CARD_FILE, calibration)
    return metrics
