"""The model the product ships: present, loadable both ways, and as accurate as its card says."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ferkit.cli import main
from ferkit.config import default_models_dir
from ferkit.inference.classifier import FacialExpressionModel, resolve_model

MODELS = default_models_dir()
GROUP_PHOTO = "data/media/photos/multi_face.jpg"  # 1000x667, five faces


def test_bundled_models_are_package_data_not_a_checkout_folder():
    import ferkit

    assert MODELS == Path(ferkit.__file__).parent / "assets" / "models"
    assert (MODELS / "DEFAULT").is_file()


def test_models_lists_the_bundled_models_and_marks_the_default(capsys):
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    default = resolve_model("default").name
    assert default in rows and rows[default].endswith("(default)")


def test_models_says_what_each_bundled_graph_holds_and_its_card_accuracy(capsys):
    assert main(["models", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "accurate": "6 networks x 2 views, int8, PublicTest accuracy 71.41% (FER2013 labels)",
        "fast": "compact x 2 views, int8, PublicTest accuracy 69.52% (FER2013 labels) (default)",
        "ferplus": "compact, PublicTest accuracy 83.26% (FER+ labels: the votes' argmax, not the majority-vote "
                   "protocol)",
    }


def test_models_figures_are_the_readmes():
    """`ferkit models` names `fast`'s network as the README does, and the README gives ferplus's figure under both
    protocols: the majority vote (its headline) and the votes' argmax (what `ferkit models` shows)."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert "`fast` (the default; package data in `src/ferkit/assets/models/fast`): the `compact` VGG" in readme
    assert ("84.73%\n  on PublicTest under the FER+ majority-vote protocol (83.26% scoring each face's most-voted "
            "emotion, the\n  figure `ferkit models` shows)") in readme


def test_models_with_no_models_found_says_so_and_fails(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FERKIT_MODELS_DIR", str(tmp_path))
    assert main(["models"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "no models found in" in captured.err and str(tmp_path) in captured.err


def test_the_default_is_a_bundled_model_with_its_card():
    folder = resolve_model("default")
    assert folder.parent == MODELS
    for name in ("model.json", "model.weights.h5", "model.onnx", "MODEL_CARD.md", "metrics.json",
                 "curves.png", "confusion.png", "history.csv"):
        assert (folder / name).is_file(), name
    assert (folder / "model.onnx").stat().st_size < 30e6  # the speed bar's size limit


def test_keras_and_onnx_loaders_agree_on_the_shipped_weights():
    """The default's Keras network (model.json + weights) is the float network its card names as member
    (to 1e-4), and the folder's model.onnx is an int8 graph with the mirrored view inside."""
    folder = resolve_model("default")
    card = FacialExpressionModel.load("default").card
    faces = np.random.default_rng(3).integers(0, 256, (64, 48, 48)).astype(np.uint8)
    keras = FacialExpressionModel(folder / "model.json", folder / "model.weights.h5")
    network = FacialExpressionModel(Path(__file__).resolve().parents[1] / card["network"]["folder"])
    np.testing.assert_allclose(network.predict_proba(faces, calibrated=False),
                               keras.predict_proba(faces, calibrated=False), atol=1e-4)
    assert card["views_in_graph"] == 2 and card["int8"] is True


@pytest.mark.shared
def test_the_shipped_graph_is_the_network_with_its_mirror_in_int8(shared_dir):
    """On real faces (the first 256 of PublicTest; uniform noise has near-ties that int8 flips, and
    the graph is judged on faces), model.onnx scores what the Keras network scores on the face and its
    mirror image, averaged, to int8 precision; the network on the face alone is further off."""
    from ferkit.data import load_dataset
    from ferkit.inference.classifier import tta_views

    folder = resolve_model("default")
    faces = load_dataset(shared_dir / "data" / "fer2013" / "fer2013.csv.gz").split("PublicTest").images[:256]
    keras = FacialExpressionModel(folder / "model.json", folder / "model.weights.h5")
    views = keras._run(tta_views(faces[..., None].astype(np.float32))).reshape(4, len(faces), -1)
    with_mirror, as_is = views[:2].mean(axis=0), views[0]
    shipped = FacialExpressionModel.load("default").predict_proba(faces, calibrated=False)
    # BatchNorm folded, uint8 weights (session 20, on a Zen 3 without VNNI): 0.0024 measured (session 19's int8
    # weights: 0.0020 on a VNNI CPU and a failure here; 0.007 for the graph quantized without the fold)
    assert np.abs(shipped - with_mirror).mean() < 0.005
    assert (shipped.argmax(1) == with_mirror.argmax(1)).mean() >= 0.98  # 100% measured (97.3% without the fold)
    assert np.abs(shipped - as_is).mean() > 2 * np.abs(shipped - with_mirror).mean()  # 0.0245 measured


@pytest.mark.shared
def test_publictest_accuracy_matches_the_card_and_beats_the_seed(shared_dir, capsys):
    data = shared_dir / "data" / "fer2013" / "fer2013.csv.gz"
    assert main(["evaluate", "--data", str(data), "--split", "PublicTest", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    card = FacialExpressionModel.load("default").card
    assert report["n"] == 3589
    assert report["accuracy"] == pytest.approx(card["accuracy"], abs=1e-6)
    assert report["accuracy"] >= 0.66  # the seed reached 62.9%; issue 2 asks for 66% or more


def test_the_readmes_python_example_runs_as_written(shared_dir, tiny_model_dir):
    """README.md's "In Python" block, with `runs/x` a trained run folder, `photo.jpg` a group photo, and
    `faces` the (N, 48, 48) array its comment describes: it runs, and every line does what it says."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = readme.split("### In Python\n\n```python\n", 1)[1].split("```", 1)[0]
    assert 'read_image("photo.jpg")' in block and '"runs/x/model.json"' in block
    code = block.replace("runs/x/", f"{tiny_model_dir}/").replace("photo.jpg", str(shared_dir / GROUP_PHOTO))
    code = code.replace("clip.mp4", str(shared_dir / "data/media/videos/single_face.mp4"))
    faces = np.stack([np.full((48, 48), 30, np.uint8), np.tile(np.arange(48, dtype=np.uint8) * 5, (48, 1))])
    namespace = {"faces": faces}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["model"].backend == "keras" and namespace["bgr_image"].shape == (667, 1000, 3)
    found = namespace["faces"]
    assert len(found) == 5 and list(found[0].to_dict()) == ["box", "emotion", "scores", "det_score"]
    assert [f.box[2] * f.box[3] for f in found] == sorted((f.box[2] * f.box[3] for f in found), reverse=True)
    assert namespace["stream"].process(namespace["bgr_image"]) == []  # shown from its second detection round
    assert [(f.box, f.scores.tolist()) for f in namespace["found"]] == [(f.box, f.scores.tolist()) for f in found]
    assert namespace["index"] == 71 and [f.face_id for f in namespace["video_faces"]] == [1]  # the last frame
