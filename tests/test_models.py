"""The model registry: every family builds and ends in a softmax; `seed` is the seed's CNN exactly."""

from __future__ import annotations

import numpy as np
import pytest

from ferkit.errors import ModelError
from ferkit.training.backend import setup_keras

setup_keras("float32")

from ferkit.models import create_model, get_spec, list_models  # noqa: E402  (needs Keras set up first)


@pytest.fixture(autouse=True)
def float32_policy():
    """Build in float32 whatever precision an earlier test left as Keras's global policy."""
    setup_keras("float32")


def test_registry_lists_the_families():
    assert {"seed", "vgg", "compact"} <= set(list_models())


@pytest.mark.parametrize("name", list_models())
def test_model_outputs_probabilities(name):
    model = create_model(name)
    assert tuple(model.input_shape) == (None, 48, 48, 1)
    faces = np.random.default_rng(0).integers(0, 256, (3, 48, 48, 1)).astype(np.float32)
    probs = model.predict_on_batch(faces)
    assert probs.shape == (3, 7)
    assert (probs >= 0).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def describe(layer) -> tuple:
    """A layer as (kind, the settings that define the seed design)."""
    kind = type(layer).__name__
    settings = {
        "Conv2D": lambda: (layer.filters, tuple(layer.kernel_size), layer.padding),
        "Dense": lambda: (layer.units, layer.activation.__name__),
        "Activation": lambda: (layer.activation.__name__,),
        "MaxPooling2D": lambda: (tuple(layer.pool_size),),
        "Dropout": lambda: (layer.rate,),
    }.get(kind, lambda: ())
    return (kind, *settings())


def seed_design() -> list[tuple]:
    conv_blocks = [[("Conv2D", filters, (kernel, kernel), "same"), ("BatchNormalization",), ("Activation", "relu"),
                    ("MaxPooling2D", (2, 2)), ("Dropout", 0.25)]
                   for filters, kernel in ((64, 3), (128, 5), (512, 3), (512, 3))]
    dense_blocks = [[("Dense", units, "linear"), ("BatchNormalization",), ("Activation", "relu"), ("Dropout", 0.25)]
                    for units in (256, 512)]
    return [("InputLayer",), ("Rescaling",), *sum(conv_blocks, []), ("Flatten",), *sum(dense_blocks, []),
            ("Dense", 7, "softmax")]


def test_seed_is_the_seed_architecture():
    model = create_model("seed")
    assert [describe(layer) for layer in model.layers] == seed_design()
    assert model.count_params() == 4478727


def test_seed_rescales_raw_pixels_inside():
    scale = create_model("seed").get_layer("scale")
    assert scale.scale == pytest.approx(1 / 255) and scale.offset == 0


def test_unknown_model_is_a_model_error():
    with pytest.raises(ModelError, match="unknown model 'nope'.*compact.*seed.*vgg"):
        create_model("nope")
    with pytest.raises(ModelError):
        get_spec("nope")


def test_importing_the_models_alone_lands_keras_on_torch():
    """A library user's plain `import ferkit.models`, with no KERAS_BACKEND set, must not fall to
    Keras's TensorFlow default (not installed): it builds `compact` on torch."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("KERAS_BACKEND", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    code = ("import ferkit.models, keras, os; m = ferkit.models.create_model('compact'); "
            "print(keras.backend.backend(), os.environ['OMP_WAIT_POLICY'], os.environ['GOMP_SPINCOUNT'], m.output_shape)")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr.strip().splitlines()[-1:]
    assert done.stdout.split("\n")[0] == "torch ACTIVE 100000 (None, 7)"
    # a value the user set wins
    done = subprocess.run([sys.executable, "-c", code], env={**env, "GOMP_SPINCOUNT": "7"},
                          capture_output=True, text=True, timeout=300)
    assert done.stdout.split("\n")[0] == "torch ACTIVE 7 (None, 7)"


def test_rescompact_adds_a_shortcut_around_each_stage_block():
    """Four residual blocks (one per stage), each an Add of the block's convs and its shortcut:
    identity where the width holds (stage 1), a 1x1 conv where it changes (stages 2-4)."""
    model = create_model("rescompact")
    adds = [layer for layer in model.layers if type(layer).__name__ == "Add"]
    assert len(adds) == 4
    shortcut_kinds = []
    for add in adds:
        shortcut_kinds.append(sorted(type(tensor._keras_history[0]).__name__ for tensor in add.input))
    # stage 1: BN of the block's second conv + the stem's ReLU; later stages: two BNs (convs + 1x1 shortcut)
    assert shortcut_kinds == [["Activation", "BatchNormalization"]] + [["BatchNormalization"] * 2] * 3
    one_by_one = [layer.filters for layer in model.layers
                  if type(layer).__name__ == "Conv2D" and tuple(layer.kernel_size) == (1, 1)]
    assert one_by_one == [64, 128, 256]
    assert model.count_params() == 1230503  # by hand: stem 416 + stages 18,688 + 58,112 + 230,912 + 920,576 + head 1,799


def test_resmedium_has_two_blocks_where_the_maps_are_small():
    """Six residual blocks: one at 48x48 and 24x24, two at 12x12 and 6x6. No stem, so every stage's first block
    changes the width (1x1 shortcut, from the pixels' one channel too) and each second block adds its input itself."""
    model = create_model("resmedium")
    adds = [layer for layer in model.layers if type(layer).__name__ == "Add"]
    sides = [sorted(type(tensor._keras_history[0]).__name__ for tensor in add.input) for add in adds]
    projected, identity = ["BatchNormalization"] * 2, ["Activation", "BatchNormalization"]
    assert sides == [projected, projected, projected, identity, projected, identity]
    assert [add.output.shape[1] for add in adds] == [48, 24, 12, 12, 6, 6]
    one_by_one = [layer.filters for layer in model.layers
                  if type(layer).__name__ == "Conv2D" and tuple(layer.kernel_size) == (1, 1)]
    assert one_by_one == [48, 96, 192, 384]
    # by hand: blocks 21,792 + 130,176 + 518,400 + 665,088 + 2,068,992 + 2,657,280; dense 147,456 + BN 1,536; 2,695
    assert model.count_params() == 6213415


@pytest.mark.parametrize("name", ["rescompact", "medium64", "resmedium"])
def test_a_family_round_trips_through_json_and_onnx(tmp_path, name):
    """The shipped forms (model.to_json() + weights, and ONNX) give Keras's own probabilities: `rescompact`'s
    and `resmedium`'s residual adds, and `medium64`'s own upscale layer, which must reload from model.json and
    export to ONNX."""
    import keras

    from ferkit.inference.classifier import FacialExpressionModel
    from ferkit.training.export import export_model

    model = create_model(name)
    rng = np.random.default_rng(3)
    model.set_weights([rng.normal(0, 0.05, w.shape).astype(np.float32) if w.ndim > 1 else w
                       for w in model.get_weights()])
    faces = rng.integers(0, 256, (4, 48, 48, 1)).astype(np.float32)
    expected = np.asarray(model.predict_on_batch(faces))
    export_model(model, tmp_path)
    rebuilt = keras.models.model_from_json((tmp_path / "model.json").read_text())
    rebuilt.load_weights(tmp_path / "model.weights.h5")
    np.testing.assert_allclose(rebuilt.predict_on_batch(faces), expected, atol=1e-6)
    onnx = FacialExpressionModel(tmp_path / "model.onnx")
    np.testing.assert_allclose(onnx._run(faces), expected, atol=1e-5)
    assert np.abs(expected - expected[0]).max() > 1e-3  # the faces really are told apart


def test_medium64_is_medium_on_the_face_upscaled_inside():
    """`medium64` takes the same 48x48 faces as every model, upscales them to 64x64 bilinearly, then runs `medium`'s
    layers: `medium`'s weights load into it and give exactly `medium` built for 64x64 on the resized face."""
    import keras

    small = create_model("medium")
    big = create_model("medium64")
    big.set_weights(small.get_weights())  # same layers, same shapes: the upscale has no weights
    assert [w.shape for w in big.get_weights()] == [w.shape for w in small.get_weights()]
    rng = np.random.default_rng(3)
    faces = np.zeros((2, 48, 48, 1), np.float32)
    faces[:, :20, :31] = rng.integers(0, 256, (2, 20, 31, 1))  # asymmetric: a flip or transpose would show
    at64 = create_model("medium", input_shape=(64, 64, 1))
    at64.set_weights(small.get_weights())
    resized = keras.ops.convert_to_numpy(keras.ops.image.resize(faces, (64, 64), interpolation="bilinear"))
    np.testing.assert_allclose(big.predict_on_batch(faces), at64.predict_on_batch(resized), atol=1e-6)
    assert big.get_layer("upscale").output.shape[1:3] == (64, 64)
    assert np.abs(big.predict_on_batch(faces) - small.predict_on_batch(faces)).max() > 1e-4  # it does upscale


def test_a_fresh_process_loads_medium64_from_its_json(tmp_path):
    """FacialExpressionModel on a `medium64` folder's Keras files, in a process that never imported
    ferkit.models itself: the loader registers the upscale layer, and the two backends agree."""
    import subprocess
    import sys

    from ferkit.training.export import export_model

    export_model(create_model("medium64"), tmp_path)
    script = ("import sys, numpy as np; from ferkit.inference.classifier import FacialExpressionModel as F\n"
              "faces = np.random.default_rng(5).integers(0, 256, (2, 48, 48, 1)).astype(np.float32)\n"
              "k = F(sys.argv[1] + '/model.json', sys.argv[1] + '/model.weights.h5'); o = F(sys.argv[1])\n"
              "print(k.backend, o.backend, float(np.abs(k.predict_proba(faces) - o.predict_proba(faces)).max()))")
    run = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    backend, other, diff = run.stdout.split()
    assert (backend, other) == ("keras", "onnx") and float(diff) < 1e-5


def test_the_benches_count_medium64_at_its_upscaled_size(tmp_path):
    """bench_models.count_macs (the model table's and the pick's cost) reads a `medium64` model.json in a fresh
    process, and counts its convolutions at 64x64: 469 M multiply-adds against `medium`'s 264 M."""
    import subprocess
    import sys
    from pathlib import Path

    for name in ("medium", "medium64"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.json").write_text(create_model(name).to_json())
    bench = Path(__file__).resolve().parents[1] / "bench"
    script = ("import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); from bench_models import "
              "count_macs\nfor n in ('medium', 'medium64'): print(*count_macs(Path(sys.argv[2]) / n / 'model.json'))")
    run = subprocess.run([sys.executable, "-c", script, str(bench), str(tmp_path)], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split() == ["2791351", "263912064", "2791351", "469060224"]
