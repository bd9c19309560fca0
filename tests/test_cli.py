"""The `ferkit` command: evaluate, explore, models and train, their output and their errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import run_ferkit

import ferkit
from ferkit.cli import main
from ferkit.config import Config, DetectorConfig, PipelineConfig
from ferkit.labels import CLASS_NAMES


def assert_one_error_line(code: int, err: str, command: str) -> str:
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"ferkit {command}: error: "), err
    return lines[0]


# --- evaluate ------------------------------------------------------------------------------------

@pytest.mark.parametrize("model_file", ["", "model.json"], ids=["run folder (onnx)", "json + weights (keras)"])
def test_evaluate_json_is_the_only_stdout(tiny_csv, tiny_model_dir, model_file):
    model = tiny_model_dir / model_file
    result = run_ferkit("evaluate", "--data", tiny_csv(), "--model", model, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)  # fails on anything printed besides the one object
    assert result.stdout.count("\n") == 1
    assert report["split"] == "PublicTest" and report["n"] == 14 and 0 <= report["accuracy"] <= 1
    assert list(report["per_class"]) == list(CLASS_NAMES)
    assert [row["support"] for row in report["per_class"].values()] == [2] * 7
    assert sum(map(sum, report["confusion"])) == 14 and len(report["confusion"]) == 7
    assert report["model"] == str(model) and report["tta"] is False


def test_evaluate_custom_split_tta_and_outputs(tiny_csv, tiny_model_dir, tmp_path, capsys):
    data = tiny_csv(5, splits=("Training", "PublicTest", "PrivateTest"))
    out = tmp_path / "eval"
    code = main(["evaluate", "--data", str(data), "--model", str(tiny_model_dir), "--split", "PrivateTest",
                 "--tta", "--out", str(out), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["split"] == "PrivateTest" and report["n"] == 5 and report["tta"] is True
    assert cv2.imread(str(out / "confusion.png")) is not None
    text = (out / "report.txt").read_text()
    assert "with TTA" in text and f"split PrivateTest: accuracy {report['accuracy']:.4f} on 5 faces" in text


def test_evaluate_with_a_uniform_prior_scores_the_reweighted_argmax(tiny_csv, tiny_model_dir, tmp_path, capsys):
    from ferkit.data import load_dataset
    from ferkit.inference.classifier import FacialExpressionModel, apply_uniform_prior

    data = tiny_csv(6)
    model = FacialExpressionModel(tiny_model_dir)
    faces = load_dataset(data, "fer2013").split("PublicTest")
    probs = model.predict_proba(faces.images)
    plain, reweighted = probs.argmax(1), apply_uniform_prior(probs, model.class_shares()).argmax(1)
    assert (plain != reweighted).any()  # the tiny model's answers move, so the two reports differ
    out = tmp_path / "eval"
    assert main(["evaluate", "--data", str(data), "--model", str(tiny_model_dir), "--uniform-prior", "--json",
                 "--out", str(out)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["uniform_prior"] is True and report["tta"] is False
    assert report["accuracy"] == pytest.approx(float(np.mean(reweighted == faces.hard_labels)))
    assert report["confusion"] == confusion(faces.hard_labels, reweighted)
    assert (out / "report.txt").read_text().startswith(f"model {tiny_model_dir}, fer2013 labels with a uniform prior\n")
    assert main(["evaluate", "--data", str(data), "--model", str(tiny_model_dir), "--tta", "--uniform-prior"]) == 0
    assert capsys.readouterr().out.startswith(f"model {tiny_model_dir}, fer2013 labels with TTA and a uniform prior\n")
    assert main(["evaluate", "--data", str(data), "--model", str(tiny_model_dir), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["uniform_prior"] is False
    assert report["accuracy"] == pytest.approx(float(np.mean(plain == faces.hard_labels)))
    assert report["confusion"] == confusion(faces.hard_labels, plain)


def confusion(truth, predicted) -> list[list[int]]:
    """Rows true class, columns predicted, counted by hand."""
    table = [[0] * 7 for _ in range(7)]
    for t, p in zip(truth, predicted):
        table[int(t)][int(p)] += 1
    return table


def test_evaluate_uses_a_lone_split_by_default(tiny_csv, tiny_model_dir, capsys):
    data = tiny_csv(4, splits=("PrivateTest",))
    assert main(["evaluate", "--data", str(data), "--model", str(tiny_model_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["split"] == "PrivateTest"


def test_evaluate_scores_a_lone_training_split_only_when_named(tiny_csv, tiny_model_dir, capsys):
    """A model's own training faces flatter it: the default does not fall back on them."""
    data = tiny_csv(4, splits=("Training",))
    code = main(["evaluate", "--data", str(data), "--model", str(tiny_model_dir), "--json"])
    captured = capsys.readouterr()
    assert assert_one_error_line(code, captured.err, "evaluate") == (
        f"ferkit evaluate: error: {data}: its only split is Training, the one models train on; score it anyway "
        "with --split Training") and captured.out == ""
    assert main(["evaluate", "--data", str(data), "--model", str(tiny_model_dir), "--split", "Training",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 4


def test_evaluate_plain_text_report(tiny_csv, tiny_model_dir, capsys):
    assert main(["evaluate", "--data", str(tiny_csv()), "--model", str(tiny_model_dir)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"model {tiny_model_dir}, fer2013 labels\n") and "split PublicTest: accuracy" in out
    assert "confusion (rows true, columns predicted)" in out


def winners_votes(path: Path) -> Path:
    """FER+ votes for tiny_csv(2)'s rows: Training happiness and not-a-face, PublicTest surprise and contempt."""
    from ferkit.data.ferplus import VOTE_COLUMNS

    rows = [[10 if column == winner else 0 for column in VOTE_COLUMNS]
            for winner in ("happiness", "NF", "surprise", "contempt")]
    usages = ["Training", "Training", "PublicTest", "PublicTest"]
    path.write_text("Usage,Image name," + ",".join(VOTE_COLUMNS) + "\n"
                    + "".join(f"{u},x.png,{','.join(map(str, r))}\n" for u, r in zip(usages, rows)))
    return path


def test_evaluate_ferplus_labels(tiny_csv, tiny_model_dir, tmp_path, capsys):
    data, votes = tiny_csv(2), winners_votes(tmp_path / "fer2013new.csv")
    assert main(["evaluate", "--data", str(data), "--model", str(tiny_model_dir), "--labels", "ferplus",
                 "--ferplus-votes", str(votes), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n"] == 1 and report["per_class"]["surprise"]["support"] == 1  # contempt row dropped


def malformed_csv(tiny_csv):
    path = tiny_csv(2)
    lines = path.read_text().splitlines()
    lines[2] = "9" + lines[2][1:]
    path.write_text("\n".join(lines) + "\n")
    return path


def yunet():
    from ferkit.config import package_data_dir
    from ferkit.vision.detectors import YUNET_FILE

    return package_data_dir("detectors", YUNET_FILE)


BAD_EVALUATE = {
    "missing data file": (lambda csv, model, tmp: ["--data", str(tmp / "absent.csv"), "--model", str(model)],
                          "no such file"),
    "malformed row": (lambda csv, model, tmp: ["--data", str(malformed_csv(csv)), "--model", str(model)],
                      "line 3: unknown emotion label '9'"),
    "unknown model": (lambda csv, model, tmp: ["--data", str(csv()), "--model", str(tmp / "nope.onnx")],
                      "not a file, a run folder or a bundled model"),
    "not a model file": (lambda csv, model, tmp: ["--data", str(csv()), "--model", str(csv())],
                         "expected a .onnx file"),
    "empty split": (lambda csv, model, tmp: ["--data", str(csv()), "--model", str(model), "--split", "Nope"],
                    "split Nope is empty or absent (present: Training, PublicTest)"),
    "not a classifier": (lambda csv, model, tmp: ["--data", str(csv()), "--model", str(yunet())],
                         f"{yunet()}: not a facial expression classifier: it takes (1, 3, height, width) and "
                         "returns (1, anchors, 1); ferkit needs (batch, 48, 48, 1) faces in and (batch, 7) scores "
                         "out"),
}


@pytest.mark.parametrize("problem", BAD_EVALUATE)
def test_evaluate_bad_input_is_one_error_line(problem, tiny_csv, tiny_model_dir, tmp_path, capsys):
    make_args, detail = BAD_EVALUATE[problem]
    code = main(["evaluate", *make_args(tiny_csv, tiny_model_dir, tmp_path), "--json"])
    captured = capsys.readouterr()
    assert detail in assert_one_error_line(code, captured.err, "evaluate")
    assert captured.out == ""


def test_evaluate_without_a_default_model(tiny_csv, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FERKIT_MODELS_DIR", str(tmp_path))
    code = main(["evaluate", "--data", str(tiny_csv())])
    assert "no default model" in assert_one_error_line(code, capsys.readouterr().err, "evaluate")


def test_models_lists_a_folder_without_a_default(tiny_model_dir, tmp_path, monkeypatch, capsys):
    import shutil

    shutil.copytree(tiny_model_dir, tmp_path / "run-a")
    monkeypatch.setenv("FERKIT_MODELS_DIR", str(tmp_path))
    assert main(["models"]) == 0
    assert capsys.readouterr().out.splitlines() == ["run-a        ?, no metrics"]  # an exported net: no card
    (tmp_path / "DEFAULT").write_text("run-a\n")
    assert main(["models"]) == 0
    assert capsys.readouterr().out.splitlines() == ["run-a        ?, no metrics (default)"]


def test_error_exit_code_and_no_traceback_from_the_command(tiny_model_dir, tmp_path):
    result = run_ferkit("evaluate", "--data", tmp_path / "absent.csv", "--model", tiny_model_dir)
    assert "Traceback" not in result.stderr
    assert "no such file" in assert_one_error_line(result.returncode, result.stderr, "evaluate")


# --- explore, models, train ----------------------------------------------------------------------

def test_explore_writes_plots_and_prints_counts(tiny_csv, tmp_path, capsys):
    data = tiny_csv(10)  # labels 0..6, 0, 1, 2: angry, disgust and fear twice, the others once
    out = tmp_path / "explore"
    assert main(["explore", "--data", str(data), "--out", str(out), "--per-class", "3"]) == 0
    for name in ("samples.png", "class_balance.png"):
        assert cv2.imread(str(out / name)) is not None
    printed = capsys.readouterr().out
    rows = {line.split()[0]: line.split()[1:] for line in printed.splitlines() if line.split()}
    assert rows["split"] == [*CLASS_NAMES, "total"]
    assert rows["Training"] == ["2", "2", "2", "1", "1", "1", "1", "10"] == rows["PublicTest"]
    assert "imbalance ratio (Training): 2.0 (angry 2 / happy 1)" in printed


def test_explore_returns_counts_and_flags_a_missing_class(tmp_path, capsys):
    from ferkit.evaluation.explore import explore

    pixels = " ".join(["0"] * 2304)
    path = tmp_path / "no_disgust.csv"
    path.write_text("emotion,pixels,Usage\n" + "".join(f"{c},{pixels},Training\n" for c in (0, 0, 3, 4, 5, 6, 2)))
    counts = explore(path, tmp_path / "out", per_class=2)
    assert counts == {"Training": {"angry": 2, "disgust": 0, "fear": 1, "happy": 1, "sad": 1, "surprise": 1,
                                   "neutral": 1}}
    assert "imbalance ratio (Training): infinite, disgust has no faces" in capsys.readouterr().out


def test_explore_bad_data_is_one_error_line(tmp_path, capsys):
    code = main(["explore", "--data", str(tmp_path / "absent.csv"), "--out", str(tmp_path / "x")])
    assert "no such file" in assert_one_error_line(code, capsys.readouterr().err, "explore")


def test_models_lists_architectures(capsys):
    assert main(["models", "--architectures"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert {"seed", "vgg", "compact"} <= set(names)
    assert main(["models", "--architectures", "--json"]) == 0
    assert {"seed", "vgg", "compact"} <= set(json.loads(capsys.readouterr().out))


def test_train_with_bad_data_exits_2(tmp_path, capsys):
    code = main(["train", "--data", str(tmp_path / "absent.csv"), "--out", str(tmp_path / "runs"),
                 "--precision", "float32"])
    assert "no such file" in assert_one_error_line(code, capsys.readouterr().err, "train")


@pytest.mark.parametrize("flag", ["--init", "--teacher"])
def test_train_with_an_unknown_init_or_teacher_leaves_no_run_folder(flag, tiny_csv, tmp_path, capsys):
    code = main(["train", "--data", str(tiny_csv()), flag, "nosuch", "--out", str(tmp_path / "runs"),
                 "--precision", "float32"])
    assert "model 'nosuch' not found" in assert_one_error_line(code, capsys.readouterr().err, "train")
    assert not (tmp_path / "runs").exists()


def test_train_ferplus_mode_needs_ferplus_labels(ferkit, tiny_csv, tmp_path):
    code, out, err = ferkit("train", "--data", tiny_csv(), "--out", tmp_path, "--ferplus-mode", "soft")
    assert assert_one_error_line(code, err, "train").startswith(
        "ferkit train: error: argument --ferplus-mode: needs --labels ferplus (--labels fer2013 would ignore it)")
    assert list(tmp_path.iterdir()) == []


def test_train_ferplus_votes_need_a_use(ferkit, tiny_csv, tmp_path, monkeypatch):
    code, out, err = ferkit("train", "--data", tiny_csv(), "--out", tmp_path, "--ferplus-votes", tmp_path / "v.csv")
    assert assert_one_error_line(code, err, "train") == (
        "ferkit train: error: argument --ferplus-votes: needs --labels ferplus or --ferplus-weight (without them no "
        "vote is read)")
    assert list(tmp_path.iterdir()) == []
    import ferkit.training.fit

    taken = []
    monkeypatch.setattr(ferkit.training.fit, "train", lambda cfg, command: taken.append(cfg) or {}, raising=True)
    for use in (["--labels", "ferplus"], ["--ferplus-weight", "0.3"]):
        main(["train", "--data", "x.csv", "--ferplus-votes", "v.csv", *use])
    assert [(cfg.labels, cfg.ferplus_weight, cfg.ferplus_votes) for cfg in taken] == [
        ("ferplus", 0.0, "v.csv"), ("fer2013", 0.3, "v.csv")]


def test_train_with_weights_that_do_not_fit_leaves_no_run_folder(tiny_csv, tiny_model_dir, tmp_path, capsys):
    code = main(["train", "--data", str(tiny_csv()), "--holdout", "0", "--model", "seed", "--init",
                 str(tiny_model_dir), "--out", str(tmp_path / "runs"), "--precision", "float32"])
    line = assert_one_error_line(code, capsys.readouterr().err, "train")
    assert line.startswith(f"ferkit train: error: --init {tiny_model_dir}: its weights do not fit --model seed: ")
    assert not (tmp_path / "runs").exists()


def test_calibrate_needs_a_model_named(tiny_csv, capsys):
    """No default: `ferkit calibrate --data x` rewrote the bundled default model's calibration."""
    with pytest.raises(SystemExit) as exit_info:
        main(["calibrate", "--data", str(tiny_csv())])
    assert assert_one_error_line(exit_info.value.code, capsys.readouterr().err, "calibrate") == (
        "ferkit calibrate: error: the following arguments are required: --model (see ferkit calibrate --help)")


def test_help_states_each_default_once(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines at the terminal's width
    assert "--epochs EPOCHS passes over the training split (default: 30)" in text
    assert "--out OUT parent folder of run folders (default: runs)" in text
    assert "(default: the model's own)" in text and "the model's own) (default" not in text  # said by the help
    assert "--resume continue an interrupted run --seed" in text  # a switch has no default to state


def test_ensemble_refuses_views_with_no_tta(tmp_path, capsys):
    code = main(["ensemble", "a", "b", "--out", str(tmp_path / "e"), "--data", "x.csv", "--views", "4", "--no-tta"])
    assert assert_one_error_line(code, capsys.readouterr().err, "ensemble") == (
        "ferkit ensemble: error: --no-tta contradicts --views 4 (--no-tta means --views 1)")
    assert not (tmp_path / "e").exists()


@pytest.mark.parametrize("flags, views", [([], 4), (["--no-tta"], 1), (["--views", "2"], 2), (["--views", "1"], 1),
                                          (["--views", "4", "1"], [4, 1])])
def test_ensemble_takes_four_views_unless_told(flags, views, monkeypatch, tmp_path):
    # the help says 4 is the default; one session's change had made no flag mean --no-tta
    import ferkit.training.ensemble

    given = {}

    def make_ensemble(members, out, data, weights, views, command, int8):
        given["views"] = views
        return {"accuracy": 0.5, "calibration": {"temperature": 1.0, "fit_faces": 2872}}

    monkeypatch.setattr(ferkit.training.ensemble, "make_ensemble", make_ensemble)
    assert main(["ensemble", "a", "b", "--out", str(tmp_path / "e"), "--data", "x.csv", *flags]) == 0
    assert given == {"views": views}


def test_train_with_unknown_model_exits_2(tiny_csv, tmp_path, capsys):
    code = main(["train", "--data", str(tiny_csv()), "--model", "nope", "--out", str(tmp_path),
                 "--precision", "float32"])
    assert "unknown model 'nope'" in assert_one_error_line(code, capsys.readouterr().err, "train")


@pytest.mark.parametrize("name", ["../../x", "a/b", "..", "."])
def test_train_name_must_be_a_folder_name_not_a_path(tiny_csv, tmp_path, capsys, name):
    out = tmp_path / "deep" / "runs"
    code = main(["train", "--data", str(tiny_csv()), "--out", str(out), "--name", name, "--precision", "float32"])
    assert assert_one_error_line(code, capsys.readouterr().err, "train") == (
        f"ferkit train: error: --name {name!r}: a run folder's name, without '/' (--out says where it goes)")
    assert list(tmp_path.iterdir()) == []  # nothing made, inside --out or outside it


def test_train_resume_with_no_run_there_is_refused_not_a_fresh_start(tiny_csv, tmp_path, capsys):
    code = main(["train", "--data", str(tiny_csv()), "--out", str(tmp_path), "--name", "typo", "--resume",
                 "--precision", "float32"])
    assert assert_one_error_line(code, capsys.readouterr().err, "train") == (
        f"ferkit train: error: {tmp_path / 'typo'}: no interrupted run to resume there (drop --resume to start one)")
    assert list(tmp_path.iterdir()) == []


def test_train_out_that_cannot_be_made_is_one_line(tiny_csv, capsys):
    # /proc takes no new folders, even from root, for whom os.access says yes: the mkdir itself must be caught
    code = main(["train", "--data", str(tiny_csv({"Training": 64, "PublicTest": 32})), "--out", "/proc/ferkit-runs",
                 "--name", "x",
                 "--precision", "float32"])
    assert assert_one_error_line(code, capsys.readouterr().err, "train").startswith(
        "ferkit train: error: /proc/ferkit-runs/x: cannot be created (")


# --- pipeline flags: from the command line into the Config ---------------------------------------

def config_of(monkeypatch, *argv) -> Config:
    """The Config that `ferkit ARGV` hands to the package (the command itself is stubbed)."""
    seen = {}

    def capture(*args, **kwargs):
        seen["config"] = next(a for a in (*args, *kwargs.values()) if isinstance(a, Config))
        return 0

    monkeypatch.setattr("ferkit.video.process.run_video", capture)
    monkeypatch.setattr("ferkit.inference.images.run_predict", capture)
    assert main(list(argv)) == 0
    return seen["config"]


PIPELINE_FLAGS = ["--model", "mine", "--tta", "--detector", "yunet", "--detector-model", "y.onnx", "--min-face", "33",
                  "--detect-threshold", "0.42", "--uniform-prior"]


def test_video_flags_reach_the_config(monkeypatch):
    config = config_of(monkeypatch, "video", "in.mp4", *PIPELINE_FLAGS, "--detect-every", "5", "--smoothing", "0.3")
    assert (config.model, config.pipeline.tta) == ("mine", True)
    assert config.detector == DetectorConfig(name="yunet", detector_model="y.onnx", min_face=33,
                                             detect_threshold=0.42)
    haar = config_of(monkeypatch, "video", "in.mp4", "--detector", "haar", "--min-neighbors", "7").detector
    assert haar == DetectorConfig(name="haar", min_neighbors=7)
    # one classifier thread: a video's frames are read and written on the other core (video/overlap.py)
    assert config.pipeline == PipelineConfig(detect_every=5, smoothing=0.3, tta=True, classifier_threads=1,
                                             uniform_prior=True)
    assert config_of(monkeypatch, "video", "in.mp4").pipeline.uniform_prior is False


def test_predict_flags_reach_the_config(monkeypatch):
    config = config_of(monkeypatch, "predict", "a.jpg", *PIPELINE_FLAGS)
    assert (config.model, config.pipeline.tta, config.detector.min_face) == ("mine", True, 33)
    assert config.pipeline.uniform_prior is True
    assert (config.detector.detect_threshold, config.detector.detector_model) == (0.42, "y.onnx")
    assert config_of(monkeypatch, "predict", "a.jpg", "--detector", "haar", "--min-neighbors", "7").detector == \
        DetectorConfig(name="haar", min_neighbors=7)


def test_without_flags_the_config_has_its_defaults(monkeypatch):
    config = config_of(monkeypatch, "video", "in.mp4")
    assert config.model == "default" and config.detector == DetectorConfig()
    assert config.pipeline == PipelineConfig()
    assert config_of(monkeypatch, "predict", "x.jpg").pipeline == PipelineConfig()


def test_every_pipeline_flag_names_its_config_field():
    """Config field names are the flag names with - -> _ (the detector's name is --detector)."""
    from ferkit.cli import build_parser

    video = build_parser()._subparsers._group_actions[0].choices["video"]
    flags = {action.dest for action in video._actions if action.option_strings}
    fields = {*DetectorConfig.__dataclass_fields__, *PipelineConfig.__dataclass_fields__, "model"}
    assert flags - fields == {"help", "detector", "out", "csv", "timeline", "json", "no_progress", "duration",
                              "keep_partial"}


def test_every_train_flag_is_a_train_config_field_and_reaches_it(monkeypatch):
    from dataclasses import replace

    from ferkit.cli import build_parser
    from ferkit.config import TrainConfig

    train = build_parser()._subparsers._group_actions[0].choices["train"]
    assert {a.dest for a in train._actions if a.option_strings} - {"help"} == set(TrainConfig.__dataclass_fields__)
    seen = []
    monkeypatch.setattr("ferkit.training.fit.train", lambda cfg, command="": seen.append((cfg, command)) or {"ok": 1})
    argv = ["train", "--data", "d.csv", "--epochs", "3", "--batch-size", "16", "--teacher", "fast", "--distill-weight",
            "0.25", "--class-weights", "--labels", "ferplus", "--ferplus-mode", "soft", "--learning-rate", "0.002",
            "--limit", "50", "--holdout", "0.2", "--augment", "strong", "--ema", "0.995",
            "--ferplus-weight", "0.3", "--mixup", "0.2", "--distill-mode", "consistent", "--no-publictest",
            "--sam", "0.05"]
    assert main(argv) == 0
    assert seen == [(replace(TrainConfig(), data="d.csv", epochs=3, batch_size=16, teacher="fast", distill_weight=0.25,
                             class_weights=True, labels="ferplus", ferplus_mode="soft", learning_rate=0.002, limit=50,
                             holdout=0.2, augment="strong", ema=0.995, ferplus_weight=0.3, mixup=0.2,
                             distill_mode="consistent", no_publictest=True, sam=0.05),
                     "ferkit " + " ".join(argv))]


BAD_VALUES = [
    ("video", "--smoothing", "5"), ("video", "--smoothing", "0"), ("video", "--smoothing", "-0.5"),
    ("video", "--smoothing", "nan"), ("video", "--detect-every", "0"), ("video", "--detect-every", "-2"),
    ("video", "--min-face", "-1"), ("video", "--min-face", "0"), ("predict", "--min-neighbors", "-1"),
    ("predict", "--detect-threshold", "1.5"), ("video", "--detect-every", "two"),
    ("train", "--epochs", "0"), ("train", "--batch-size", "-8"), ("train", "--limit", "0"),
    ("train", "--learning-rate", "0"), ("train", "--distill-weight", "2"), ("train", "--early-stopping", "-1"),
    ("train", "--ema", "1"), ("train", "--ema", "-0.1"), ("train", "--sam", "-0.05"), ("train", "--sam", "1.5"), ("train", "--ferplus-weight", "0.5"),
    ("train", "--ferplus-weight", "-0.1"), ("train", "--mixup", "-0.2"), ("train", "--mixup", "nan"),
    ("train", "--distill-mode", "online"),
    ("explore", "--per-class", "0"),
    # C ints inside OpenCV: beyond them the cascade raised a traceback at the first image
    ("predict", "--min-face", "99999999999"), ("video", "--min-face", "65536"),
    ("predict", "--min-neighbors", "10001"),
    ("train", "--seed", "-1"), ("train", "--holdout-seed", "-1"), ("train", "--seed", str(2**32)),  # NumPy's seeds
    ("calibrate", "--holdout-seed", "-3"),
]
NEEDS = {"video": ["in.mp4"], "predict": ["a.jpg"], "train": ["--data", "x.csv"], "explore": ["--data", "x.csv"],
         "calibrate": ["--data", "x.csv", "--model", "m"]}


@pytest.mark.parametrize("command, flag, value", BAD_VALUES)
def test_bad_values_are_one_error_line_and_exit_2(capsys, command, flag, value):
    with pytest.raises(SystemExit) as exit_info:
        main([command, *NEEDS[command], flag, value])
    captured = capsys.readouterr()
    line = assert_one_error_line(exit_info.value.code, captured.err, command)
    assert f"argument {flag}: " in line and value in line and captured.out == ""


def test_smoothing_bounds_are_inclusive_of_one(monkeypatch):
    assert config_of(monkeypatch, "video", "in.mp4", "--smoothing", "1").pipeline.smoothing == 1.0
    assert config_of(monkeypatch, "video", "in.mp4", "--smoothing", "0.01").pipeline.smoothing == 0.01


def test_bad_value_from_the_command_line_has_no_usage_block():
    result = run_ferkit("video", "in.mp4", "--smoothing", "5")
    assert result.stderr == "ferkit video: error: argument --smoothing: 5 is outside (0, 1] (see ferkit video --help)\n"
    assert result.returncode == 2 and result.stdout == ""


# --- no process-wide state from imports or library calls -------------------------------------------

SIDE_EFFECTS_SCRIPT = """
import os, json, sys
before = dict(os.environ)
import ferkit  # sets only OPENCV_IO_MAX_IMAGE_PIXELS and ORT_DISABLE_TELEMETRY, if unset: before cv2 and onnxruntime
import ferkit.video.process, ferkit.inference.images, ferkit.evaluation.evaluate, ferkit.evaluation.explore
import ferkit.web.app
import matplotlib
matplotlib.use("svg")  # the caller's own choice
import keras
keras.config.set_dtype_policy("mixed_bfloat16")
import numpy as np, tempfile, pathlib
from ferkit.evaluation.plots import plot_confusion
from ferkit.inference.classifier import FacialExpressionModel
folder = pathlib.Path(sys.argv[1])
FacialExpressionModel(folder / "model.json", folder / "model.weights.h5").predict_proba(np.zeros((1, 48, 48)))
plot_confusion(np.eye(7, dtype=int), pathlib.Path(tempfile.mkdtemp()) / "c.png")
changed = sorted(k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k))
print(json.dumps({"env": changed, "backend": matplotlib.get_backend(), "policy": keras.config.dtype_policy().name}))
"""


def test_imports_and_library_calls_leave_process_settings_alone(tiny_model_dir):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENCV_", "ORT_"))}  # as a fresh shell has it
    result = subprocess.run([sys.executable, "-c", SIDE_EFFECTS_SCRIPT, str(tiny_model_dir)], capture_output=True,
                            text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    state = json.loads(result.stdout.strip().splitlines()[-1])
    state["env"] = [name for name in state["env"] if name != "LD_LIBRARY_PATH"]  # set by cv2's own loader
    assert state == {"env": ["OPENCV_IO_MAX_IMAGE_PIXELS", "ORT_DISABLE_TELEMETRY"], "backend": "svg",
                     "policy": "mixed_bfloat16"}


def test_loading_and_running_a_model_writes_no_file_anywhere(tmp_path):
    """onnxruntime's telemetry files (~/.cache/Microsoft/..., $TMPDIR/.ses) stay off; ferkit writes none either."""
    import os
    import subprocess
    import sys

    home, tmp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir(), tmp.mkdir()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("OPENCV_", "ORT_"))}, "HOME": str(home),
           "TMPDIR": str(tmp), "XDG_CACHE_HOME": str(home / ".cache")}
    script = ("import ferkit, numpy as np\n"
              "from ferkit.inference.classifier import FacialExpressionModel\n"
              "print(FacialExpressionModel.load('fast').predict(np.full((1, 48, 48), 90, np.uint8))[0])")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == ["home", "tmp"]


# --- output folders that cannot be written: one line, before any work ----------------------------

def not_writable(monkeypatch, folder):
    """`folder` reads as not writable, as for a user without permission there (these tests may run as root,
    whom no mode bits stop)."""
    real = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, *args, **kwargs: (
        False if Path(path) == folder and mode & os.W_OK else real(path, mode, *args, **kwargs)))


def test_evaluate_and_calibrate_default_to_the_labels_the_model_learnt(tiny_csv, model_copy, tmp_path, monkeypatch,
                                                                      capsys):
    """A FER+ model scored on FER2013 labels, or its temperature fitted against them, was silently the default."""
    from ferkit.errors import DataError

    (model_copy / "train_config.json").write_text(json.dumps({"model": "compact", "labels": "ferplus"}))
    data, votes = tiny_csv(2), winners_votes(tmp_path / "fer2013new.csv")
    common = ["--data", str(data), "--model", str(model_copy), "--ferplus-votes", str(votes), "--json"]
    assert main(["evaluate", *common]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["labels"], report["n"]) == ("ferplus", 1)  # the contempt row has no FER2013 class
    assert main(["evaluate", *common, "--labels", "fer2013"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["labels"], report["n"]) == ("fer2013", 2)
    tree = tmp_path / "tree" / "test"  # an image tree's labels are its folder names, whatever the model learnt
    for index, name in enumerate(("happy", "sad", "sad")):
        (tree / name).mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(tree / name / f"{index}.png"), np.zeros((48, 48), np.uint8))
    assert main(["evaluate", "--data", str(tree.parent), "--model", str(model_copy), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["labels"], report["split"], report["n"]) == ("fer2013", "test", 3)

    asked = []

    def load_dataset(path, labels="fer2013", *args, **kwargs):
        asked.append(labels)
        raise DataError("stop here")

    monkeypatch.setattr("ferkit.data.load_dataset", load_dataset)
    for extra in ([], ["--labels", "ferplus"], ["--labels", "fer2013"]):  # the last refused before any data
        assert main(["calibrate", "--data", str(data), "--model", str(model_copy), *extra]) == 2
    assert asked == ["ferplus", "ferplus"]


OUT_PROBLEMS = {  # --out, and the message after "PATH: "
    "an existing file": (lambda tmp: tmp / "text.jpg", "is a file, not a folder"),
    "below a file": (lambda tmp: tmp / "text.jpg" / "e",
                     "cannot be created ({tmp}/text.jpg is a file, not a folder)"),
    "an unwritable folder": (lambda tmp: tmp / "ro", "folder is not writable"),
    "in an unwritable folder": (lambda tmp: tmp / "ro" / "e", "cannot be created ({tmp}/ro is not writable)"),
}
# each command's work that must not start (patched to fail the test) and its arguments besides --out
OUT_COMMANDS = {
    "evaluate": ("ferkit.inference.classifier.FacialExpressionModel.predict_proba",
                 lambda csv, model: ["--data", csv, "--model", model]),
    "explore": ("ferkit.evaluation.explore.load_dataset", lambda csv, model: ["--data", csv]),
    "ensemble": ("ferkit.training.ensemble.build_ensemble", lambda csv, model: [model, "--data", csv]),
}


@pytest.mark.parametrize("problem", OUT_PROBLEMS)
@pytest.mark.parametrize("command", OUT_COMMANDS)
def test_an_unusable_out_is_one_error_line_before_any_work(command, problem, tiny_csv, tiny_model_dir, tmp_path,
                                                           monkeypatch, capsys):
    make_out, detail = OUT_PROBLEMS[problem]
    (tmp_path / "text.jpg").write_text("not a folder")
    (tmp_path / "ro").mkdir()
    not_writable(monkeypatch, tmp_path / "ro")
    work, make_args = OUT_COMMANDS[command]
    monkeypatch.setattr(work, lambda *args, **kwargs: pytest.fail(f"{command} started its work"))
    out = make_out(tmp_path)
    code = main([command, *map(str, make_args(tiny_csv(), tiny_model_dir)), "--out", str(out)])
    line = assert_one_error_line(code, capsys.readouterr().err, command)
    assert line == f"ferkit {command}: error: {out}: {detail.format(tmp=tmp_path)}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ro", "text.jpg"] and not any((tmp_path / "ro").iterdir())


@pytest.mark.parametrize("command", OUT_COMMANDS)
def test_an_output_file_name_taken_by_a_folder_is_refused_before_any_work(command, tiny_csv, tiny_model_dir,
                                                                          tmp_path, monkeypatch, capsys):
    taken = {"evaluate": "report.txt", "explore": "class_balance.png", "ensemble": "calibration.json"}[command]
    (tmp_path / "out" / taken).mkdir(parents=True)
    work, make_args = OUT_COMMANDS[command]
    monkeypatch.setattr(work, lambda *args, **kwargs: pytest.fail(f"{command} started its work"))
    code = main([command, *map(str, make_args(tiny_csv(), tiny_model_dir)), "--out", str(tmp_path / "out")])
    line = assert_one_error_line(code, capsys.readouterr().err, command)
    assert line == f"ferkit {command}: error: {tmp_path / 'out' / taken}: is a folder, not a file name"


# --- calibrate ----------------------------------------------------------------------------------

@pytest.fixture
def model_copy(tiny_model_dir, tmp_path):
    """A copy of the tiny model's folder, for commands that write into it."""
    import shutil

    return Path(shutil.copytree(tiny_model_dir, tmp_path / "mymodel"))


@pytest.fixture
def few_faces_fit(monkeypatch):
    """Calibration fits on the tests' few holdout faces (`ferkit calibrate` refuses fewer than 200)."""
    monkeypatch.setattr("ferkit.evaluation.calibration.MIN_FIT_FACES", 1)


def test_calibrate_refuses_a_fit_on_too_few_faces_and_writes_nothing(model_copy, tmp_path, monkeypatch, capsys):
    data = labelled_csv(tmp_path / "labelled.csv", {"Training": 1998, "PublicTest": 14})  # a holdout of 199
    fake_scores(monkeypatch, wrong_quarters=1)
    before = sorted((p.name, p.stat().st_mtime_ns) for p in model_copy.iterdir())
    code = main(["calibrate", "--data", str(data), "--model", str(model_copy)])
    assert assert_one_error_line(code, capsys.readouterr().err, "calibrate") == (
        "ferkit calibrate: error: 199 holdout faces are too few to fit a temperature (at least 200: more Training "
        "rows, or a larger --holdout); nothing written")
    assert sorted((p.name, p.stat().st_mtime_ns) for p in model_copy.iterdir()) == before
    data = labelled_csv(tmp_path / "labelled.csv", {"Training": 1999, "PublicTest": 14})  # 200: taken
    assert main(["calibrate", "--data", str(data), "--model", str(model_copy), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["fit_faces"] == 200


@pytest.mark.parametrize("holdout", ["nan", "inf", "-0.1", "1"])
def test_calibrate_refuses_a_holdout_train_refuses(holdout, tiny_csv, model_copy, capsys):
    code = main(["calibrate", "--data", str(tiny_csv()), "--model", str(model_copy), "--holdout", holdout])
    line = assert_one_error_line(code, capsys.readouterr().err, "calibrate")
    assert line == (f"ferkit calibrate: error: --holdout {float(holdout)}: expected a share from 0 to below 1, "
                    "such as 0.1")
    assert not (model_copy / "calibration.json").exists()


def labelled_csv(path: Path, rows_per_split: dict[str, int]) -> Path:
    """A FER2013 CSV whose faces carry their label (pixel 0: 10 + 30 * label) and their row's number modulo 4
    (pixel 1), which fake_scores reads."""
    lines = ["emotion,pixels,Usage"]
    for split, rows in rows_per_split.items():
        for i in range(rows):
            pixels = [10 + 30 * (i % 7), i % 4] + [0] * (48 * 48 - 2)
            lines.append(f"{i % 7},{' '.join(map(str, pixels))},{split}")
    path.write_text("\n".join(lines) + "\n")
    return path


def fake_scores(monkeypatch, wrong_quarters: int):
    """Every model scores labelled_csv's faces 0.99 for one class: the next class for rows whose number modulo 4
    is below `wrong_quarters`, the true one for the others (1: 75% right, overconfident; 4: always wrong)."""
    import numpy as np

    def predict_proba(self, faces, tta=False, calibrated=True, uniform_prior=False):
        faces = np.asarray(faces)
        label = (faces[:, 0, 0].astype(int) - 10) // 30
        predicted = np.where(faces[:, 0, 1] < wrong_quarters, (label + 1) % 7, label)
        probs = np.full((len(faces), 7), 0.01 / 6, np.float32)
        probs[np.arange(len(faces)), predicted] = 0.99
        return probs

    monkeypatch.setattr("ferkit.inference.classifier.FacialExpressionModel.predict_proba", predict_proba)


def test_calibrate_fits_on_the_runs_own_holdout_and_refuses_another(few_faces_fit, model_copy, tmp_path, monkeypatch,
                                                                      capsys):
    data = labelled_csv(tmp_path / "labelled.csv", {"Training": 140, "PublicTest": 28})
    fake_scores(monkeypatch, wrong_quarters=1)
    config = model_copy / "train_config.json"
    config.write_text(json.dumps({"holdout": 0.2, "holdout_seed": 7, "command": "ferkit train ..."}))
    assert main(["calibrate", "--data", str(data), "--model", str(model_copy), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["fit_on"] == "Training holdout (20%, seed 7, 28 faces)"
    for flags in (["--holdout", "0.1"], ["--holdout-seed", "42"]):
        code = main(["calibrate", "--data", str(data), "--model", str(model_copy), *flags])
        assert assert_one_error_line(code, capsys.readouterr().err, "calibrate") == (
            f"ferkit calibrate: error: {model_copy}: was trained beside a holdout of 0.2 drawn with seed 7; another "
            "draw would fit on faces it learnt (drop --holdout and --holdout-seed)")
    assert main(["calibrate", "--data", str(data), "--model", str(model_copy), "--holdout", "0.2", "--holdout-seed",
                 "7"]) == 0  # the same draw, named
    capsys.readouterr()
    # a run cut by --limit drew its holdout from its first rows: the fit takes those, not faces the run learnt
    from ferkit.data import load_dataset

    config.write_text(json.dumps({"holdout": 0.2, "holdout_seed": 7, "limit": 100}))
    first = load_dataset(data).split("Training")
    _, expected = first.select(np.arange(len(first)) < 100).holdout(0.2, 7)
    fitted = []
    monkeypatch.setattr("ferkit.evaluation.calibration.fit_temperature",
                        lambda probs, labels: fitted.append(labels.tolist()) or 1.5)
    assert main(["calibrate", "--data", str(data), "--model", str(model_copy), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["fit_on"] == "Training holdout (20%, seed 7, 21 faces)"  # not 28
    assert fitted == [expected.hard_labels.tolist()] and len(expected) == 21
    (model_copy / "calibration.json").unlink()
    config.write_text(json.dumps({"holdout": 0.0, "holdout_seed": 42}))
    code = main(["calibrate", "--data", str(data), "--model", str(model_copy)])
    assert assert_one_error_line(code, capsys.readouterr().err, "calibrate") == (
        f"ferkit calibrate: error: {model_copy}: was trained with --holdout 0, on every training face: none is left "
        "to fit a temperature on without flattering it")
    assert not (model_copy / "calibration.json").exists()


def test_calibrate_takes_a_ferplus_runs_rows_as_its_mode_took_them(few_faces_fit, model_copy, tmp_path, monkeypatch,
                                                                    capsys):
    # a soft-vote run keeps faces that majority voting drops, so its holdout is drawn among other rows: a fit on the
    # majority rows' holdout had taken faces the run learnt
    from ferkit.data import load_dataset
    from ferkit.data.ferplus import VOTE_COLUMNS

    data = labelled_csv(tmp_path / "labelled.csv", {"Training": 140, "PublicTest": 28})
    votes = tmp_path / "votes.csv"
    counts = np.random.default_rng(4).integers(0, 4, (168, len(VOTE_COLUMNS)))
    votes.write_text("Usage,Image name," + ",".join(VOTE_COLUMNS) + "\n" + "".join(
        f"{'Training' if i < 140 else 'PublicTest'},x.png,{','.join(map(str, row))}\n" for i, row in enumerate(counts)))
    (model_copy / "train_config.json").write_text(json.dumps({
        "model": "compact", "labels": "ferplus", "ferplus_mode": "soft", "ferplus_votes": str(votes), "holdout": 0.1,
        "holdout_seed": 42}))
    fitted = []
    monkeypatch.setattr("ferkit.evaluation.calibration.fit_temperature",
                        lambda probs, labels: fitted.append(labels.tolist()) or 1.5)
    assert main(["calibrate", "--data", str(data), "--model", str(model_copy), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["labels"] == "ferplus"
    _, soft = load_dataset(data, "ferplus", votes, "soft").split("Training").holdout(0.1, 42)
    _, majority = load_dataset(data, "ferplus", votes, "majority").split("Training").holdout(0.1, 42)
    assert len(soft) != len(majority)  # the two draws differ: the test tells them apart
    assert fitted == [soft.hard_labels.tolist()]


def test_calibrate_takes_an_image_tree_as_train_and_evaluate_do(few_faces_fit, model_copy, tmp_path, monkeypatch,
                                                                 capsys):
    import cv2
    import numpy as np

    fake_scores(monkeypatch, wrong_quarters=1)
    for split, count in (("train", 210), ("test", 9)):
        for i in range(count):
            name = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")[i % 7]
            (tmp_path / "tree" / split / name).mkdir(parents=True, exist_ok=True)
            face = np.zeros((48, 48), np.uint8)
            face[0, :2] = 10 + 30 * (i % 7), i % 4  # fake_scores reads the label and the quarter here
            cv2.imwrite(str(tmp_path / "tree" / split / name / f"{i}.png"), face)
    assert main(["calibrate", "--data", str(tmp_path / "tree"), "--model", str(model_copy), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["fit_on"] == "train holdout (10%, seed 42, 21 faces)" and result["reported_on"] == "test (9 faces)"


def test_calibrate_takes_a_model_file_and_writes_beside_it(few_faces_fit, model_copy, tmp_path, monkeypatch, capsys):
    data = labelled_csv(tmp_path / "labelled.csv", {"Training": 140, "PublicTest": 28})
    fake_scores(monkeypatch, wrong_quarters=1)  # overconfident: the fit softens it (temperature 2.067)
    for name in ("model.onnx", "model.json"):
        assert main(["calibrate", "--data", str(data), "--model", str(model_copy / name), "--json"]) == 0
        result = json.loads(capsys.readouterr().out)
        assert json.loads((model_copy / "calibration.json").read_text()) == result
        card = (model_copy / "MODEL_CARD.md").read_text()
        assert card.count("## Calibration") == 1 and f"Temperature {result['temperature']:.3f}, fitted" in card
        assert result["temperature"] == 2.0671 and result["ece_after"] < result["ece_before"]
    assert sorted(p.name for p in model_copy.iterdir() if p.name.startswith(".")) == []  # no partial files left


def test_calibrate_refuses_a_file_that_is_not_its_folders_model_before_any_work(tiny_csv, model_copy, monkeypatch,
                                                                                capsys):
    import shutil

    other = Path(shutil.copy(model_copy / "model.onnx", model_copy / "other.onnx"))
    card = model_copy / "MODEL_CARD.md"
    card.write_text("# card\n")
    monkeypatch.setattr("ferkit.evaluation.calibration.fit_temperature", lambda *a: pytest.fail("fitted"))
    code = main(["calibrate", "--data", str(tiny_csv()), "--model", str(other)])
    line = assert_one_error_line(code, capsys.readouterr().err, "calibrate")
    assert line == (f"ferkit calibrate: error: {other}: a calibration belongs to a model folder's own model.onnx or "
                    "model.json; pass a model folder or a bundled name")
    assert not (model_copy / "calibration.json").exists() and card.read_text() == "# card\n"


def test_calibrate_refuses_the_network_of_a_folder_whose_calibration_is_its_graphs(tiny_csv, model_copy, monkeypatch,
                                                                                    capsys):
    # the bundled `fast` layout: model.onnx is a graph with views inside, model.json its one network; a fit on the
    # network had been written where the graph picks it up
    (model_copy / "metrics.json").write_text(json.dumps({"model": "ensemble", "members": ["a"], "views_in_graph": 2}))
    monkeypatch.setattr("ferkit.evaluation.calibration.fit_temperature", lambda *a: pytest.fail("fitted"))
    code = main(["calibrate", "--data", str(tiny_csv()), "--model", str(model_copy / "model.json")])
    line = assert_one_error_line(code, capsys.readouterr().err, "calibrate")
    assert line == (f"ferkit calibrate: error: {model_copy / 'model.json'}: this folder's calibration belongs to its "
                    "model.onnx (a graph with members or test-time views inside), not to the network in its model.json; "
                    "calibrate the folder")
    assert not (model_copy / "calibration.json").exists()


def test_calibrate_refuses_labels_other_than_those_the_model_learnt(tiny_csv, model_copy, monkeypatch, capsys):
    # the fit's labels become the model's word on what it learnt: evaluate's default and the uniform prior follow them
    (model_copy / "train_config.json").write_text(json.dumps({"model": "compact", "labels": "fer2013"}))
    monkeypatch.setattr("ferkit.evaluation.calibration.fit_temperature", lambda *a: pytest.fail("fitted"))
    code = main(["calibrate", "--data", str(tiny_csv()), "--model", str(model_copy), "--labels", "ferplus"])
    line = assert_one_error_line(code, capsys.readouterr().err, "calibrate")
    assert line == (f"ferkit calibrate: error: {model_copy}: learnt the fer2013 labels; its temperature is fitted "
                    "against those (drop --labels ferplus: fitting on others would also make it say it learnt ferplus)")
    assert not (model_copy / "calibration.json").exists()


def test_calibrate_refuses_an_unwritable_model_folder_before_any_work(tiny_csv, model_copy, monkeypatch, capsys):
    not_writable(monkeypatch, model_copy)
    monkeypatch.setattr("ferkit.evaluation.calibration.fit_temperature", lambda *a: pytest.fail("fitted"))
    code = main(["calibrate", "--data", str(tiny_csv()), "--model", str(model_copy / "model.onnx")])
    line = assert_one_error_line(code, capsys.readouterr().err, "calibrate")
    assert line == f"ferkit calibrate: error: {model_copy}: folder is not writable"


# --- explore's sample grid ------------------------------------------------------------------------

@pytest.mark.parametrize("per_class", [51, 100_000])
def test_explore_refuses_more_than_50_faces_per_class(per_class, tiny_csv, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("ferkit.evaluation.explore.plot_samples", lambda *a: pytest.fail("drew the grid"))
    code = main(["explore", "--data", str(tiny_csv()), "--out", str(tmp_path / "x"), "--per-class", str(per_class)])
    line = assert_one_error_line(code, capsys.readouterr().err, "explore")
    assert line == f"ferkit explore: error: --per-class {per_class}: expected 1 to 50 sample faces per class"
    assert not (tmp_path / "x").exists()


def test_explore_grid_has_no_more_columns_than_faces(tiny_csv, tmp_path):
    data = tiny_csv(10)  # at most 2 faces a class
    assert main(["explore", "--data", str(data), "--out", str(tmp_path / "x"), "--per-class", "50"]) == 0
    # 0.9 inches of labels, 2 columns of 1.1 and 7 rows of 1.2 at 90 dpi, not 50 columns (5031 pixels) of empty axes
    assert cv2.imread(str(tmp_path / "x" / "samples.png")).shape == (756, 279, 3)


@pytest.mark.parametrize("per_class, width", [(1, 270), (2, 279), (8, 873)])
def test_explore_grid_has_room_for_its_title_labels_and_faces(per_class, width, tiny_csv, tmp_path, monkeypatch):
    """Sized by its faces alone, --per-class 1 drew 99 pixels wide: the title clipped to "aining sample", the row
    labels squeezing the faces to a fifth of an inch."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from ferkit.evaluation import explore, plots

    figures = []
    monkeypatch.setattr(explore, "new_figure", lambda **kw: figures.append(plots.new_figure(**kw)) or figures[-1])
    out = tmp_path / "x"
    assert main(["explore", "--data", str(tiny_csv(56)), "--out", str(out), "--per-class", str(per_class)]) == 0
    assert cv2.imread(str(out / "samples.png")).shape == (756, width, 3)  # 8 faces a class: no column dropped
    samples = figures[0]
    renderer = FigureCanvasAgg(samples).get_renderer()
    inside = samples.bbox
    [title] = [text.get_window_extent(renderer) for text in samples.texts if text.get_text() == "Training samples"]
    assert inside.x0 <= title.x0 and title.x1 <= inside.x1
    assert all(inside.x0 <= ax.yaxis.label.get_window_extent(renderer).x0 for ax in samples.axes)
    # every face about an inch wide, as in the 8-a-class grid
    assert {round(ax.get_window_extent(renderer).width / samples.dpi, 1) for ax in samples.axes} == {1.0}


def test_an_unbounded_range_says_inf(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--data", "x.csv", "--learning-rate", "inf"])
    line = assert_one_error_line(exit_info.value.code, capsys.readouterr().err, "train")
    assert line == "ferkit train: error: argument --learning-rate: inf is outside (0, inf) (see ferkit train --help)"


# --- serve's token and job lifetime ----------------------------------------------------------------

def serve_config_of(monkeypatch, *argv) -> Config:
    """The Config that `ferkit serve ARGV` hands to the web server (stubbed: nothing starts)."""
    seen = []
    monkeypatch.setattr("ferkit.web.server.serve", lambda config: seen.append(config) or 0)
    assert main(["serve", *argv]) == 0
    return seen[0]


@pytest.mark.parametrize("token, problem", [
    ("", "an empty token is refused; give one of at least 16 characters"),
    ("abc", "a token of 3 characters is too short to guard the server; give at least 16"),
    ("x" * 15, "a token of 15 characters is too short to guard the server; give at least 16"),
])
def test_serve_refuses_an_empty_or_short_token(token, problem, monkeypatch, capsys):
    monkeypatch.setattr("ferkit.web.server.serve", lambda config: pytest.fail("served"))
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--token", token])
    line = assert_one_error_line(exit_info.value.code, capsys.readouterr().err, "serve")
    assert line == (f"ferkit serve: error: argument --token: {problem}, or leave --token out to have one generated "
                    "(see ferkit serve --help)")


@pytest.mark.parametrize("token, problem", [
    ("", "an empty token is refused; give one of at least 16 characters"),
    ("short", "a token of 5 characters is too short to guard the server; give at least 16"),
])
def test_serve_refuses_an_empty_or_short_ferkit_token(token, problem, monkeypatch, capsys):
    monkeypatch.setenv("FERKIT_TOKEN", token)
    monkeypatch.setattr("ferkit.web.server.serve", lambda config: pytest.fail("served"))
    code = main(["serve"])
    line = assert_one_error_line(code, capsys.readouterr().err, "serve")
    assert line == f"ferkit serve: error: FERKIT_TOKEN: {problem}, or unset FERKIT_TOKEN to have one generated"


def test_serve_takes_a_16_character_token_and_the_flag_over_the_environment(monkeypatch):
    monkeypatch.setenv("FERKIT_TOKEN", "e" * 16)
    assert serve_config_of(monkeypatch).serve.token == "e" * 16
    monkeypatch.setenv("FERKIT_TOKEN", "short")  # --token wins; the variable is not read
    assert serve_config_of(monkeypatch, "--token", "f" * 16).serve.token == "f" * 16
    monkeypatch.delenv("FERKIT_TOKEN")
    assert serve_config_of(monkeypatch).serve.token is None  # generated by the server when needed


@pytest.mark.parametrize("ttl", ["0", "59"])
def test_serve_refuses_a_job_ttl_under_a_minute(ttl, monkeypatch, capsys):
    monkeypatch.setattr("ferkit.web.server.serve", lambda config: pytest.fail("served"))
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--job-ttl", ttl])
    line = assert_one_error_line(exit_info.value.code, capsys.readouterr().err, "serve")
    assert line == f"ferkit serve: error: argument --job-ttl: {ttl} is out of range (60..) (see ferkit serve --help)"


def test_serve_takes_a_job_ttl_of_a_minute(monkeypatch):
    monkeypatch.delenv("FERKIT_TOKEN", raising=False)
    assert serve_config_of(monkeypatch, "--job-ttl", "60").serve.job_ttl == 60


# --- flags that do nothing with the others given: refused, never ignored --------------------------

COMMAND_STUBS = {"predict": "ferkit.inference.images.run_predict", "video": "ferkit.video.process.run_video",
                 "batch": "ferkit.batch.run_batch", "serve": "ferkit.web.server.serve"}
COMMAND_ARGS = {"predict": ["a.jpg"], "video": ["in.mp4"], "batch": ["in.mp4", "--out", "o"], "serve": []}
INAPPLICABLE = [  # flags, and what the error says after "argument "
    (["--min-neighbors", "3"], "--min-neighbors: needs --detector haar (--detector yunet would ignore it)"),
    (["--detector", "yunet", "--min-neighbors", "5"],
     "--min-neighbors: needs --detector haar (--detector yunet would ignore it)"),
    (["--detector", "haar", "--detector-model", "y.onnx"],
     "--detector-model: needs --detector yunet (--detector haar would ignore it)"),
    (["--detector", "haar", "--detect-threshold", "0.7"],
     "--detect-threshold: needs --detector yunet (--detector haar would ignore it)"),
]


@pytest.mark.parametrize("flags, problem", INAPPLICABLE)
@pytest.mark.parametrize("command", COMMAND_STUBS)
def test_a_flag_the_detector_would_ignore_is_one_error_line(command, flags, problem, monkeypatch, capsys):
    monkeypatch.setattr(COMMAND_STUBS[command], lambda *a, **k: pytest.fail(f"{command} ran"))
    with pytest.raises(SystemExit) as exit_info:
        main([command, *COMMAND_ARGS[command], *flags])
    line = assert_one_error_line(exit_info.value.code, capsys.readouterr().err, command)
    assert line == f"ferkit {command}: error: argument {problem} (see ferkit {command} --help)"


def test_batch_address_without_the_ray_engine_is_one_error_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(COMMAND_STUBS["batch"], lambda *a, **k: pytest.fail("batch ran"))
    for engine in ([], ["--engine", "local"]):
        with pytest.raises(SystemExit) as exit_info:
            main(["batch", "in.mp4", "--out", str(tmp_path / "o"), "--address", "auto", *engine])
        line = assert_one_error_line(exit_info.value.code, capsys.readouterr().err, "batch")
        assert line == ("ferkit batch: error: argument --address: needs --engine ray (--engine local would ignore "
                        "it) (see ferkit batch --help)")
    assert not (tmp_path / "o").exists()


def test_flags_for_the_detector_in_use_and_the_ray_address_are_taken(monkeypatch):
    monkeypatch.delenv("FERKIT_TOKEN", raising=False)
    seen = {}
    monkeypatch.setattr(COMMAND_STUBS["batch"], lambda *a, **k: seen.update(k) or 0)
    assert main(["batch", "in.mp4", "--out", "o", "--engine", "ray", "--address", "auto"]) == 0
    assert (seen["engine"], seen["address"]) == ("ray", "auto")
    config = serve_config_of(monkeypatch, "--detector", "haar", "--min-neighbors", "2", "--min-face", "30")
    assert config.detector == DetectorConfig(name="haar", min_neighbors=2, min_face=30)
    config = serve_config_of(monkeypatch, "--detector-model", "y.onnx", "--detect-threshold", "0.5")
    assert config.detector == DetectorConfig(detector_model="y.onnx", detect_threshold=0.5)


def test_calibrate_refuses_a_temperature_at_the_edge_of_its_range_and_writes_nothing(few_faces_fit, model_copy,
                                                                                     tmp_path, monkeypatch, capsys):
    data = labelled_csv(tmp_path / "labelled.csv", {"Training": 140, "PublicTest": 28})
    fake_scores(monkeypatch, wrong_quarters=4)  # always wrong: the NLL falls all the way to the highest temperature
    before = sorted(p.name for p in model_copy.iterdir())
    code = main(["calibrate", "--data", str(data), "--model", str(model_copy), "--json"])
    captured = capsys.readouterr()
    line = assert_one_error_line(code, captured.err, "calibrate")
    assert line == ("ferkit calibrate: error: the fitted temperature 8.000 is at an edge of its search range "
                    "(0.25 to 8): 14 holdout faces do not pin it down; nothing written")
    assert captured.out == "" and sorted(p.name for p in model_copy.iterdir()) == before


def test_calibrate_refuses_a_temperature_that_makes_the_holdout_ece_worse(few_faces_fit, model_copy, tmp_path,
                                                                          monkeypatch, capsys):
    data = labelled_csv(tmp_path / "labelled.csv", {"Training": 140, "PublicTest": 28})
    fake_scores(monkeypatch, wrong_quarters=1)  # 0.99 for a class, right on about 3 faces in 4
    # a temperature inside the range that flattens the scores far past their accuracy
    monkeypatch.setattr("ferkit.evaluation.calibration.fit_temperature", lambda probs, labels: 7.0)
    card = model_copy / "MODEL_CARD.md"
    card.write_text("# card\n")
    code = main(["calibrate", "--data", str(data), "--model", str(model_copy)])
    line = assert_one_error_line(code, capsys.readouterr().err, "calibrate")
    assert line == ("ferkit calibrate: error: the fitted temperature 7.000 makes the expected calibration error on "
                    "the 14 holdout faces worse (20.43% -> 49.24%); nothing written")
    assert not (model_copy / "calibration.json").exists() and card.read_text() == "# card\n"


# --- --json with names that are not UTF-8 ---------------------------------------------------------

def test_evaluate_json_shows_a_non_utf8_model_path_escaped(tiny_csv, tiny_model_dir, tmp_path, capsys):
    import shutil

    folder = Path(shutil.copytree(tiny_model_dir, tmp_path / "m\udcff\udcfe"))  # the bytes ff fe in its name
    assert main(["evaluate", "--data", str(tiny_csv()), "--model", str(folder / "model.json"), "--json"]) == 0
    out = capsys.readouterr().out
    out.encode("utf-8")  # strict: no lone surrogates, which strict JSON parsers refuse
    assert json.loads(out)["model"] == f"{tmp_path}/m\\xff\\xfe/model.json"


def test_video_json_shows_non_utf8_output_names_escaped(tiny_model_dir, tmp_path, capsys):
    from conftest import write_video

    video = write_video(tmp_path / "in.mp4", 4)
    csv = tmp_path / "c\udcff.csv"
    assert main(["video", str(video), "--model", str(tiny_model_dir), "--csv", str(csv), "--json",
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    out.encode("utf-8")
    assert json.loads(out)["outputs"] == {"csv": f"{tmp_path}/c\\xff.csv",
                                          "timeline": f"{tmp_path}/c\\xff_timeline.png"}
    assert csv.is_file()  # the file itself has the name asked for


def test_model_summary_of_an_unscored_run_gives_its_holdout_figure():
    from ferkit.cli import model_summary

    card = {"model": "vgg", "val_split": "PublicTest", "pick_split": "Training holdout (10%, seed 42)",
            "pick_accuracy": 0.7096, "accuracy": None}
    assert model_summary(card) == "vgg, Training holdout (10%, seed 42) accuracy 70.96% (PublicTest not scored)"
    assert model_summary({"model": "vgg", "accuracy": None}) == "vgg, no metrics"
    scored = dict(card, accuracy=0.7044)
    assert model_summary(scored) == "vgg, PublicTest accuracy 70.44% (FER2013 labels)"


def test_python_dash_m_ferkit_is_the_ferkit_command():
    ok = subprocess.run([sys.executable, "-m", "ferkit", "--version"], capture_output=True, text=True, timeout=120)
    assert (ok.returncode, ok.stdout.strip()) == (0, f"ferkit {ferkit.__version__}")
    bad = subprocess.run([sys.executable, "-m", "ferkit", "predict", "--min-face", "0", "x.jpg"], capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and bad.stderr.startswith("ferkit predict: error:")


def test_a_reader_that_leaves_early_ends_the_command_quietly():
    """`ferkit models | head -1`: the pipe closes under the writer, which stops with SIGPIPE's status and no
    BrokenPipeError traceback."""
    import os

    reader, writer = os.pipe()
    os.close(reader)  # gone before the first line is written
    try:
        run = subprocess.run([sys.executable, "-m", "ferkit", "models"], stdout=writer, stderr=subprocess.PIPE,
                             text=True, timeout=300)
    finally:
        os.close(writer)
    assert (run.returncode, run.stderr) == (141, "")
