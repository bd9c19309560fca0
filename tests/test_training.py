"""Training smoke runs on a few hundred synthetic faces: the run folder, resume, and the exported files."""

from __future__ import annotations

import csv
import json
import os
import shutil
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from ferkit.config import TrainConfig
from ferkit.errors import FerkitError
from ferkit.inference.classifier import FacialExpressionModel, apply_uniform_prior
from ferkit.labels import CLASS_NAMES
from ferkit.training.backend import setup_keras

keras = setup_keras("float32")

from ferkit.training import callbacks, fit  # noqa: E402  (needs Keras set up first)

RUN_FILES = ("model.json", "model.weights.h5", "model.onnx", "history.csv", "curves.png", "confusion.png",
             "metrics.json", "MODEL_CARD.md")


def smoke_config(data, out, **changes) -> TrainConfig:
    return replace(TrainConfig(data=str(data), model="compact", epochs=1, batch_size=32, out=str(out),
                               name="smoke", precision="float32"), **changes)


def history_epochs(run_dir) -> list[int]:
    with open(run_dir / "history.csv", newline="") as handle:
        return [int(row["epoch"]) for row in csv.DictReader(handle)]


@pytest.fixture(scope="module")
def finished_run(tiny_csv, tmp_path_factory):
    """(config, run folder) of one finished 1-epoch run on 160 training and 64 validation faces."""
    cfg = smoke_config(tiny_csv({"Training": 160, "PublicTest": 64}), tmp_path_factory.mktemp("runs"))
    fit.train(cfg, command="pytest")
    return cfg, fit.run_folder(cfg)


def test_the_run_records_the_optimizer_it_trained_with_the_models_own_values_filled_in(finished_run):
    # the flags say null for "the model's own"; a reader of the run needs the values
    cfg, run_dir = finished_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert (cfg.optimizer, cfg.learning_rate, cfg.schedule) == (None, None, None)
    assert metrics["optimizer"] == {"optimizer": "adamw", "learning_rate": 0.002, "schedule": "cosine",
                                    "weight_decay": 0.05, "label_smoothing": 0.1}  # compact's own
    assert ("- Optimizer: AdamW, learning rate 0.002 (cosine decay after one epoch of warm-up), weight decay 0.05; "
            "loss: categorical cross-entropy, label smoothing 0.1.\n") in (run_dir / "MODEL_CARD.md").read_text()


@pytest.mark.parametrize("changes, settings", [
    ({"model": "seed"}, {"optimizer": "adam", "learning_rate": 0.0005, "schedule": "plateau", "weight_decay": 0.0,
                         "label_smoothing": 0.0}),
    ({"model": "compact", "optimizer": "sgd", "learning_rate": 0.01, "schedule": "plateau"},
     {"optimizer": "sgd", "learning_rate": 0.01, "schedule": "plateau", "weight_decay": 5e-4, "label_smoothing": 0.1}),
    ({"model": "vgg", "optimizer": "adamw"},
     {"optimizer": "adamw", "learning_rate": 0.01, "schedule": "cosine", "weight_decay": 0.05, "label_smoothing": 0.1}),
])
def test_optimizer_settings_fill_in_the_model_familys_own(tmp_path, changes, settings):
    from ferkit.models.registry import get_spec

    cfg = smoke_config("x.csv", tmp_path, **changes)
    assert fit.optimizer_settings(cfg, get_spec(cfg.model)) == settings


@pytest.fixture
def random_faces():
    return np.random.default_rng(1).integers(0, 256, (5, 48, 48)).astype(np.uint8)


def test_run_folder_holds_the_shipped_files(finished_run):
    _, run_dir = finished_run
    missing = [name for name in RUN_FILES if not (run_dir / name).is_file()]
    assert not missing
    assert not (run_dir / fit.BACKUP_DIR).exists()
    assert history_epochs(run_dir) == [0]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["model"] == "compact" and metrics["epochs_run"] == 1 and metrics["command"] == "pytest"
    # about 10% of Training (rounded per class) picks the best epoch; PublicTest is scored once, at the end
    assert metrics["train_rows"] + metrics["pick_rows"] == 160 and 12 <= metrics["pick_rows"] <= 20
    assert metrics["evaluation"]["n"] == 64
    assert metrics["pick_split"].startswith("Training holdout")
    assert metrics["val_split"] == "PublicTest" and 0 <= metrics["accuracy"] <= 1
    card = (run_dir / "MODEL_CARD.md").read_text()
    assert "PublicTest accuracy" in card and "slightly optimistic" not in card


def test_holdout_zero_picks_on_the_reported_split_and_says_so(tiny_csv, tmp_path):
    cfg = smoke_config(tiny_csv({"Training": 48, "PublicTest": 24}), tmp_path, holdout=0.0)
    metrics = fit.train(cfg)
    assert metrics["train_rows"] == 48 and metrics["pick_split"] == "PublicTest"
    assert "slightly optimistic" in (fit.run_folder(cfg) / "MODEL_CARD.md").read_text()


def test_no_publictest_leaves_the_reported_split_unscored_until_evaluate(tiny_csv, tmp_path, monkeypatch, capsys):
    from ferkit.cli import main as cli_main

    data = tiny_csv({"Training": 60, "PublicTest": 24})
    monkeypatch.setattr(fit, "score_run", lambda *args, **kwargs: pytest.fail("the reported split was scored"))
    metrics = fit.train(smoke_config(data, tmp_path, no_publictest=True, epochs=2))
    run_dir = tmp_path / "smoke"
    val_accuracy = [float(row["val_accuracy"]) for row in csv.DictReader((run_dir / "history.csv").open())]
    assert metrics["pick_accuracy"] == round(max(val_accuracy), 4)
    assert (metrics["evaluation"], metrics["accuracy"], metrics["accuracy_tta"]) == (None, None, None)
    assert json.loads((run_dir / "metrics.json").read_text()) == metrics
    out = capsys.readouterr().out
    assert "24 faces left unscored: --no-publictest (PublicTest)" in out
    last = out.strip().splitlines()[-1]
    assert last == (f"{run_dir}: best epoch {metrics['best_epoch']}, Training holdout (10%, seed 42) accuracy "
                    f"{metrics['pick_accuracy']:.4f}; PublicTest not scored (--no-publictest): "
                    f"ferkit evaluate --model {run_dir} --data {data} --split PublicTest")
    card = (run_dir / "MODEL_CARD.md").read_text()
    assert "**PublicTest accuracy: not scored yet** (`--no-publictest`); the best epoch read" in card
    assert "confusion" not in card and not (run_dir / "confusion.png").exists()
    assert (run_dir / "model.onnx").is_file()
    assert cli_main(["evaluate", "--model", str(run_dir), "--data", str(data), "--json"]) == 0  # scored when asked
    assert json.loads(capsys.readouterr().out)["n"] == 24


def test_no_publictest_needs_a_holdout(tiny_csv, tmp_path):
    with pytest.raises(FerkitError, match=r"^--no-publictest needs --holdout > 0: with 0 the reported split picks "
                                          r"every epoch$"):
        fit.train(smoke_config(tiny_csv(), tmp_path, holdout=0.0, no_publictest=True))
    assert not (tmp_path / "smoke").exists()


@pytest.mark.parametrize("holdout", [-0.1, 1.0])
def test_holdout_out_of_range_is_refused(tiny_csv, tmp_path, holdout):
    with pytest.raises(FerkitError, match="--holdout"):
        fit.train(smoke_config(tiny_csv(), tmp_path, holdout=holdout))


def test_rerun_without_resume_refuses(finished_run):
    cfg, run_dir = finished_run
    with pytest.raises(FerkitError, match="already holds a run"):
        fit.train(cfg)


def test_resuming_a_finished_run_refuses(finished_run):
    cfg, _ = finished_run
    with pytest.raises(FerkitError, match="finished run"):
        fit.train(replace(cfg, resume=True, epochs=2))


class Interrupted(Exception):
    pass


def train_interrupted_after_epoch_1(cfg, monkeypatch, **kwargs):
    """fit.train(cfg) stopped as if the machine went down between epochs 1 and 2 (the backup of epoch 1 written)."""
    draw = callbacks.LivePlot.on_epoch_end

    def stop_after_first_epoch(self, epoch, logs=None):
        draw(self, epoch, logs)
        raise Interrupted

    with monkeypatch.context() as patched:
        patched.setattr(callbacks.LivePlot, "on_epoch_end", stop_after_first_epoch)
        with pytest.raises(Interrupted):
            fit.train(cfg, **kwargs)


@pytest.mark.parametrize("views", [1, 2])  # 2: the backup holds the two-view training graph
def test_resume_continues_an_interrupted_run(tiny_csv, tmp_path, monkeypatch, views):
    cfg = smoke_config(tiny_csv({"Training": 64, "PublicTest": 32}), tmp_path, epochs=2, views=views)
    draw = callbacks.LivePlot.on_epoch_end

    def stop_after_first_epoch(self, epoch, logs=None):
        draw(self, epoch, logs)
        raise Interrupted  # as if the machine stopped between epochs 1 and 2

    # the epochs' clock: epoch 1 takes 100 s, epoch 2 (in the resumed invocation) 37 s
    clock = iter([0.0, 100.0, 1000.0, 1037.0])
    monkeypatch.setattr(callbacks, "time", SimpleNamespace(monotonic=lambda: next(clock)))
    monkeypatch.setattr(callbacks.LivePlot, "on_epoch_end", stop_after_first_epoch)
    with pytest.raises(Interrupted):
        fit.train(cfg)
    run_dir = fit.run_folder(cfg)
    assert (run_dir / fit.BACKUP_DIR).is_dir() and history_epochs(run_dir) == [0]

    monkeypatch.setattr(callbacks.LivePlot, "on_epoch_end", draw)
    metrics = fit.train(replace(cfg, resume=True))
    assert history_epochs(run_dir) == [0, 1]  # epoch 2 only: epoch 1 was restored, not retrained
    assert metrics["epochs_run"] == 2
    assert not (run_dir / fit.BACKUP_DIR).exists()
    # the whole run's training time, not the resumed invocation's alone
    assert metrics["train_seconds"] == 137
    assert callbacks.read_history(run_dir / "history.csv")["epoch_seconds"] == [100.0, 37.0]


def test_a_resumed_run_is_the_run_it_continues(tiny_csv, tmp_path, monkeypatch):
    """The same losses, epoch for epoch, as the run never stopped: batches reseeded per epoch, and Dropout's
    random state (torch's) saved with the backup and restored."""
    data = tiny_csv({"Training": 64, "PublicTest": 16})
    whole = smoke_config(data, tmp_path / "whole", epochs=2)
    fit.train(whole)
    cut = smoke_config(data, tmp_path / "cut", epochs=2)
    train_interrupted_after_epoch_1(cut, monkeypatch)
    fit.train(replace(cut, resume=True))
    losses = [[row["loss"] for row in csv.DictReader((fit.run_folder(c) / "history.csv").open())] for c in (whole, cut)]
    assert len(losses[0]) == 2 and losses[0] == losses[1]


@pytest.mark.parametrize("changes, named", [({"train_split": "PublicTest"}, "PublicTest"),
                                            ({"val_split": "Training"}, "Training"),
                                            ({"train_split": "PublicTest", "val_split": "publictest"}, "publictest")])
def test_the_reported_split_may_not_be_the_training_split(tiny_csv, tmp_path, changes, named):
    cfg = smoke_config(tiny_csv({"Training": 64, "PublicTest": 32}), tmp_path, **changes)
    with pytest.raises(FerkitError) as error:
        fit.train(cfg)
    assert str(error.value) == (f"the training split and the reported split (--train-split, --val-split) are both "
                                f"{named}: the reported figure would be on faces the model learnt from; name two "
                                "different splits")
    assert not fit.run_folder(cfg).exists()


def test_a_resumed_plateau_run_keeps_its_patience_counters(tiny_csv, tmp_path, monkeypatch):
    """EarlyStopping's and ReduceLROnPlateau's counters at each epoch's start are those of the run never stopped
    (their on_train_begin resets them; the backup keeps them)."""
    seen = {}

    def record(self, epoch, logs=None):
        seen.setdefault(self.__class__.__name__, []).append((epoch, self.wait, self.best))

    for cls in (keras.callbacks.EarlyStopping, keras.callbacks.ReduceLROnPlateau):
        monkeypatch.setattr(cls, "on_epoch_begin", record, raising=False)
    data = tiny_csv({"Training": 64, "PublicTest": 16})
    whole = smoke_config(data, tmp_path / "whole", epochs=3, schedule="plateau", early_stopping=5)
    fit.train(whole)
    expected, seen = seen, {}
    cut = smoke_config(data, tmp_path / "cut", epochs=3, schedule="plateau", early_stopping=5)
    reseed = callbacks.ReseedBatches.on_epoch_begin

    def stop_as_epoch_2_begins(self, epoch, logs=None):  # where a stop lands: in an epoch, after the last one's saves
        if epoch == 1:
            raise Interrupted
        reseed(self, epoch, logs)

    with monkeypatch.context() as patched:
        patched.setattr(callbacks.ReseedBatches, "on_epoch_begin", stop_as_epoch_2_begins)
        with pytest.raises(Interrupted):
            fit.train(cut)
    fit.train(replace(cut, resume=True))
    assert sorted(expected) == ["EarlyStopping", "ReduceLROnPlateau"]
    for name, states in expected.items():
        assert [epoch for epoch, _, _ in states] == [0, 1, 2] and states[1][2] is not None  # epoch 1 set a best
        assert seen[name] == states, name


def test_a_damaged_counters_file_does_not_stop_a_resume(tmp_path):
    """Written whole (renamed), but a file damaged some other way only means the counters start afresh."""
    counters = callbacks.Counters(tmp_path / "backup" / "counters.json", [SimpleNamespace(wait=0, best=None)])
    counters.set_model(SimpleNamespace(_initial_epoch=1))
    counters.on_epoch_end(0)
    assert json.loads((tmp_path / "backup" / "counters.json").read_text()) == {
        "epoch": 1, "states": [{"wait": 0, "best": None}]}
    assert sorted(p.name for p in (tmp_path / "backup").iterdir()) == ["counters.json"]
    for damaged in ("{trunc", "[]", '{"epoch": 1}', ""):
        (tmp_path / "backup" / "counters.json").write_text(damaged)
        counters.watched[0].wait = 7
        counters.on_train_begin()
        assert counters.watched[0].wait == 7, damaged


def test_a_run_stopped_during_its_export_resumes_at_the_export_not_at_epoch_1(tiny_csv, tmp_path, monkeypatch):
    """BackupAndRestore deletes its state when fit returns: a stop in the export must not restart the training."""
    cfg = smoke_config(tiny_csv({"Training": 64, "PublicTest": 32}), tmp_path, epochs=2)
    export = fit.export_run

    def stopped(*args, **kwargs):
        raise Interrupted

    monkeypatch.setattr(fit, "export_run", stopped)
    with pytest.raises(Interrupted):
        fit.train(cfg, command="ferkit train A")
    run_dir = fit.run_folder(cfg)
    assert history_epochs(run_dir) == [0, 1] and (run_dir / fit.FIT_DONE).exists()
    assert not (run_dir / fit.BACKUP_DIR).exists() and not (run_dir / "metrics.json").exists()
    monkeypatch.setattr(fit, "export_run", export)
    monkeypatch.setattr(keras.Model, "fit", lambda *a, **k: pytest.fail("trained again"))
    metrics = fit.train(replace(cfg, resume=True), command="ferkit train A --resume")
    assert history_epochs(run_dir) == [0, 1] and metrics["epochs_run"] == 2
    assert not (run_dir / fit.FIT_DONE).exists() and (run_dir / "model.onnx").is_file()
    # the card and train_config.json keep the command that started the run, and list the resume
    assert metrics["command"] == "ferkit train A" and "`ferkit train A`" in (run_dir / "MODEL_CARD.md").read_text()
    recorded = json.loads((run_dir / "train_config.json").read_text())
    assert (recorded["command"], recorded["resumed_with"]) == ("ferkit train A", ["ferkit train A --resume"])


def test_resume_refuses_flags_that_differ_from_the_runs_own(tiny_csv, tmp_path, monkeypatch):
    data = tiny_csv({"Training": 64, "PublicTest": 32})
    cfg = smoke_config(data, tmp_path, epochs=2)
    train_interrupted_after_epoch_1(cfg, monkeypatch, command="ferkit train B")
    run_dir = fit.run_folder(cfg)
    before = (run_dir / "train_config.json").read_text()
    for changes, said in [({"model": "medium"}, "--model medium (the run has compact)"),
                          ({"holdout_seed": 7, "augment": "none"},
                           "--holdout-seed 7 (the run has 42); --augment none (the run has standard)")]:
        with pytest.raises(FerkitError) as error:
            fit.train(replace(cfg, resume=True, **changes), command="ferkit train B --resume")
        assert str(error.value) == (f"{run_dir}: --resume continues the run as it started, but {said}; resume with "
                                    "the run's own command plus --resume: ferkit train B")
    assert (run_dir / "train_config.json").read_text() == before and history_epochs(run_dir) == [0]
    # the same file by another path, and --epochs (a run cut short or extended), are not differences
    monkeypatch.chdir(tmp_path)
    relative = os.path.relpath(data, tmp_path)  # ../fer2013N/tiny.csv: the run recorded the absolute path
    assert relative != cfg.data
    metrics = fit.train(replace(cfg, resume=True, epochs=3, data=relative))
    assert metrics["epochs_run"] == 3


def test_default_run_names_differ_by_target():
    names = [fit.run_folder(TrainConfig(data="d", out="runs", **kw)).name for kw in (
        {}, {"labels": "ferplus"}, {"labels": "ferplus", "ferplus_mode": "soft"}, {"ferplus_weight": 0.3},
        {"ferplus_mode": "soft"}, {"seed": 7, "model": "vgg"}, {"name": "mine"})]
    assert names == ["compact-fer2013-s42", "compact-ferplus-s42", "compact-ferplus-soft-s42",
                     "compact-fer2013-fp0.3-s42", "compact-fer2013-s42", "vgg-fer2013-s7", "mine"]


def test_signals_are_deferred_to_the_end_of_the_block():
    import os
    import signal

    reached = []
    with pytest.raises(KeyboardInterrupt):
        with fit.signals_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            reached.append("the rest of the block")  # not interrupted midway
    assert reached == ["the rest of the block"]


def test_json_and_weights_match_onnx(finished_run, random_faces):
    _, run_dir = finished_run
    model = keras.models.model_from_json((run_dir / "model.json").read_text())
    model.load_weights(run_dir / "model.weights.h5")
    direct = model.predict_on_batch(random_faces[..., None].astype(np.float32))

    onnx = FacialExpressionModel(run_dir)
    from_json = FacialExpressionModel(run_dir / "model.json", run_dir / "model.weights.h5")
    assert (onnx.backend, from_json.backend) == ("onnx", "keras")
    np.testing.assert_allclose(onnx.predict_proba(random_faces), direct, atol=1e-4)
    np.testing.assert_allclose(from_json.predict_proba(random_faces), direct, atol=1e-4)
    np.testing.assert_allclose(onnx.predict_proba(random_faces, tta=True),
                               from_json.predict_proba(random_faces, tta=True), atol=1e-4)


@pytest.mark.parametrize("shape, rows", [((48, 48), 1), ((5, 48, 48), 5), ((5, 48, 48, 1), 5)])
def test_predict_proba_accepts_one_face_or_a_batch(finished_run, random_faces, shape, rows):
    classifier = FacialExpressionModel(finished_run[1])
    faces = random_faces[:rows].reshape(shape)
    probs = classifier.predict_proba(faces)
    assert probs.shape == (rows, 7) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_predict_names_and_tta(finished_run, random_faces):
    classifier = FacialExpressionModel(finished_run[1])
    names = classifier.predict(random_faces)
    assert len(names) == 5 and set(names) <= set(CLASS_NAMES)
    assert classifier.predict_emotion(random_faces[0]) == names[0]
    tta = classifier.predict_proba(random_faces, tta=True)
    assert tta.shape == (5, 7)
    np.testing.assert_allclose(tta.sum(axis=1), 1.0, atol=1e-5)
    assert not np.allclose(tta, classifier.predict_proba(random_faces))  # the extra views change the scores
    with pytest.raises(ValueError, match="48x48"):
        classifier.predict_proba(np.zeros((2, 64, 64)))


@pytest.mark.parametrize("schedule", [None, "cosine", "plateau"])
def test_schedule_flag_overrides_the_models_own(schedule):
    from ferkit.models import get_spec

    cfg = TrainConfig(data="unused", model="compact", epochs=4, schedule=schedule)
    optimizer = fit.make_optimizer(keras, get_spec("compact"), cfg, steps_per_epoch=10)
    # compact is designed for cosine decay; --schedule plateau leaves a plain rate for ReduceLROnPlateau
    is_schedule = isinstance(optimizer._learning_rate, keras.optimizers.schedules.LearningRateSchedule)
    assert is_schedule == (schedule != "plateau")


@pytest.mark.parametrize("family, optimizer, decay", [
    ("compact", None, 0.05), ("compact", "sgd", 5e-4), ("medium", None, 5e-4), ("medium", "adamw", 0.05)])
def test_weight_decay_follows_the_optimizer_not_the_family(family, optimizer, decay):
    """A family's decay is written for its own optimizer: L2 5e-4 for SGD, decoupled 0.05 for AdamW.
    Switching optimizer with --optimizer switches to the other form's value."""
    from ferkit.models import get_spec

    cfg = TrainConfig(data="unused", model=family, epochs=4, optimizer=optimizer)
    made = fit.make_optimizer(keras, get_spec(family), cfg, steps_per_epoch=10)
    assert made.weight_decay == pytest.approx(decay, rel=1e-6)


# --- what reaches the batches: teacher targets, class weights, FER+ labels -------------------------

@pytest.fixture
def batches_seen(monkeypatch):
    """The targets and sample weights train() hands to the training batches (the first FaceBatches made)."""
    from ferkit.training import batches

    seen = []

    class Recording(batches.FaceBatches):
        def __init__(self, images, targets, *args, sample_weights=None, **kwargs):
            seen.append({"images": images, "targets": targets, "weights": sample_weights,
                         "mixup": kwargs.get("mixup", 0.0)})
            super().__init__(images, targets, *args, sample_weights=sample_weights, **kwargs)

    monkeypatch.setattr(batches, "FaceBatches", Recording)
    return seen


def training_faces(csv_path):
    from ferkit.data import load_dataset

    return load_dataset(csv_path).split("Training")


def test_teacher_targets_mix_the_teachers_scores_with_the_labels(tiny_csv, tiny_model_dir, tmp_path, batches_seen):
    data = tiny_csv({"Training": 20, "PublicTest": 14})
    fit.train(smoke_config(data, tmp_path, holdout=0.0, teacher=str(tiny_model_dir), distill_weight=0.7))
    faces = training_faces(data)
    teacher = FacialExpressionModel(tiny_model_dir).predict_proba(faces.images)
    expected = 0.7 * teacher + 0.3 * np.eye(7)[faces.labels]
    np.testing.assert_allclose(batches_seen[0]["targets"], expected, atol=1e-6)
    np.testing.assert_array_equal(batches_seen[0]["images"], faces.images)
    assert batches_seen[0]["weights"] is None


def test_consistent_teacher_scores_the_batches_not_the_clean_faces(tiny_csv, tiny_model_dir, tmp_path, monkeypatch):
    from ferkit.training import batches

    made = []

    class Recording(batches.FaceBatches):
        def __init__(self, images, targets, *args, **kwargs):
            super().__init__(images, targets, *args, **kwargs)
            made.append(self)

    monkeypatch.setattr(batches, "FaceBatches", Recording)
    data = tiny_csv({"Training": 20, "PublicTest": 14})
    fit.train(smoke_config(data, tmp_path, holdout=0.0, teacher=str(tiny_model_dir), distill_weight=0.6,
                           distill_mode="consistent"))
    training, validation = made
    faces = training_faces(data)
    np.testing.assert_array_equal(training.targets, np.eye(7)[faces.labels])  # labels stay the labels
    assert training.distill_weight == 0.6 and validation.teacher is None
    probe = np.random.default_rng(3).integers(0, 256, (5, 48, 48, 1)).astype(np.float32)
    np.testing.assert_allclose(training.teacher(probe), FacialExpressionModel(tiny_model_dir).predict_proba(probe),
                               atol=1e-6)
    card = (tmp_path / "smoke" / "MODEL_CARD.md").read_text()
    assert f"distilled from `{tiny_model_dir}` (consistent, weight 0.6)" in card
    assert json.loads((tmp_path / "smoke" / "train_config.json").read_text())["distill_mode"] == "consistent"


def test_unknown_distill_mode_is_an_error(tiny_csv, tmp_path):
    data = tiny_csv({"Training": 20, "PublicTest": 14})
    with pytest.raises(FerkitError, match="unknown distillation mode 'online'"):
        fit.train(smoke_config(data, tmp_path, holdout=0.0, teacher="fast", distill_mode="online"))
    assert not (tmp_path / "smoke").exists()
    with pytest.raises(FerkitError, match="--distill-mode consistent needs --teacher MODEL"):
        fit.train(smoke_config(data, tmp_path, holdout=0.0, distill_mode="consistent"))
    assert not (tmp_path / "smoke").exists()


def test_class_weights_weigh_each_face_by_its_class(tiny_csv, tmp_path, batches_seen):
    data = tiny_csv({"Training": 10, "PublicTest": 14})  # labels 0..6, 0, 1, 2: counts 2, 2, 2, 1, 1, 1, 1
    fit.train(smoke_config(data, tmp_path, holdout=0.0, class_weights=True))
    rare, common = 10 / (7 * 1), 10 / (7 * 2)  # total / (classes * count): a mean weight of 1 per face
    expected = [common, common, common, rare, rare, rare, rare, common, common, common]
    np.testing.assert_allclose(batches_seen[0]["weights"], expected, rtol=1e-6)
    np.testing.assert_array_equal(batches_seen[0]["targets"], np.eye(7)[training_faces(data).labels])
    # what the net learnt from is balanced, so a uniform prior has nothing to undo: 10 / 7 faces a class
    assert json.loads((tmp_path / "smoke" / "train_config.json").read_text())["class_counts"] == [1.43] * 7
    np.testing.assert_allclose(FacialExpressionModel(tmp_path / "smoke").class_shares(), np.full(7, 1 / 7), rtol=1e-12)


def test_mixup_reaches_the_training_batches_only(tiny_csv, tmp_path, batches_seen):
    data = tiny_csv({"Training": 20, "PublicTest": 14})
    fit.train(smoke_config(data, tmp_path, holdout=0.0, mixup=0.3))
    assert [seen["mixup"] for seen in batches_seen] == [0.3, 0.0]  # training batches blend; validation never
    assert json.loads((tmp_path / "smoke" / "train_config.json").read_text())["mixup"] == 0.3
    assert "augmentation standard, mixup alpha 0.3; class weights False." in (tmp_path / "smoke" / "MODEL_CARD.md").read_text()


def write_votes(path, usages, rows):
    from ferkit.data.ferplus import VOTE_COLUMNS

    lines = ["Usage,Image name," + ",".join(VOTE_COLUMNS)]
    lines += [f"{usage},x.png," + ",".join(str(row.get(c, 0)) for c in VOTE_COLUMNS)
              for usage, row in zip(usages, rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("mode", ["majority", "soft"])
def test_training_on_ferplus_labels(tiny_csv, tmp_path, batches_seen, mode):
    data = tiny_csv({"Training": 4, "PublicTest": 2})
    votes = write_votes(tmp_path / "fer2013new.csv", ["Training"] * 4 + ["PublicTest"] * 2, [
        {"happiness": 6, "surprise": 4},  # happy (3) by 6 to 4
        {"NF": 10},  # not a face: dropped
        {"contempt": 5, "sadness": 3, "anger": 2},  # majority contempt: dropped; soft: sad 0.6, angry 0.4
        {"neutral": 9, "unknown": 1},  # neutral (6)
        {"fear": 10}, {"disgust": 10}])
    metrics = fit.train(smoke_config(data, tmp_path / "runs", holdout=0.0, labels="ferplus", ferplus_mode=mode,
                                     ferplus_votes=str(votes)))
    images = training_faces(data).images
    targets = np.zeros((3, 7), np.float32)
    if mode == "majority":
        kept = [0, 3]
        targets = np.eye(7, dtype=np.float32)[[3, 6]]
    else:
        kept = [0, 2, 3]
        targets[0, [3, 5]] = 0.6, 0.4
        targets[1, [4, 0]] = 0.6, 0.4
        targets[2, 6] = 1.0
    np.testing.assert_allclose(batches_seen[0]["targets"], targets, atol=1e-6)
    np.testing.assert_array_equal(batches_seen[0]["images"], images[kept])
    assert metrics["evaluation"]["n"] == 2 and metrics["train"]["labels"] == "ferplus"


def test_training_with_ferplus_votes_mixed_into_the_targets(tiny_csv, tmp_path, batches_seen):
    data = tiny_csv({"Training": 4, "PublicTest": 2})  # Training labels 0, 1, 2, 3
    votes = write_votes(tmp_path / "fer2013new.csv", ["Training"] * 4 + ["PublicTest"] * 2, [
        {"happiness": 6, "surprise": 4}, {"NF": 10}, {"contempt": 5, "sadness": 3, "anger": 2}, {"neutral": 9},
        {"fear": 10}, {"disgust": 10}])
    metrics = fit.train(smoke_config(data, tmp_path / "runs", holdout=0.0, ferplus_weight=0.25,
                                     ferplus_votes=str(votes)))
    targets = np.zeros((4, 7), np.float32)
    targets[0, [0, 3, 5]] = 0.75, 0.25 * 0.6, 0.25 * 0.4  # angry face, votes happy 6 / surprise 4
    targets[1, 1] = 1.0  # no emotion vote: the label alone
    targets[2, [2, 4, 0]] = 0.75, 0.25 * 0.6, 0.25 * 0.4  # contempt has no FER2013 class
    targets[3, [3, 6]] = 0.75, 0.25
    np.testing.assert_allclose(batches_seen[0]["targets"], targets, atol=1e-6)
    np.testing.assert_array_equal(batches_seen[0]["images"], training_faces(data).images)  # no face dropped
    assert metrics["train"]["ferplus_weight"] == 0.25 and metrics["evaluation"]["n"] == 2
    # the run's class counts are its targets summed per class, not the four FER2013 labels counted
    counts = json.loads((tmp_path / "runs" / "smoke" / "train_config.json").read_text())["class_counts"]
    assert counts == [0.85, 1.0, 0.75, 0.9, 0.15, 0.1, 0.25]


def write_face_tree(root, counts: dict[str, dict[str, int]]) -> None:
    """root/<split>/<class>/<n>.png, `counts[split][class]` random faces each."""
    import cv2

    rng = np.random.default_rng(5)
    for split, per_class in counts.items():
        for name, count in per_class.items():
            (root / split / name).mkdir(parents=True)
            for n in range(count):
                cv2.imwrite(str(root / split / name / f"{n}.png"), rng.integers(0, 256, (48, 48), np.uint8))


def test_a_model_trained_on_image_folders_carries_that_trees_class_shares(tmp_path):
    tree = {"train": {"angry": 1, "disgust": 6, "fear": 1, "happy": 2, "sad": 1, "surprise": 3, "neutral": 1},
            "val": {"happy": 2, "sad": 1}}
    write_face_tree(tmp_path / "faces", tree)
    fit.train(smoke_config(tmp_path / "faces", tmp_path / "runs", holdout=0.0))
    run_dir = tmp_path / "runs" / "smoke"
    assert json.loads((run_dir / "train_config.json").read_text())["class_counts"] == [1, 6, 1, 2, 1, 3, 1]
    model = FacialExpressionModel(run_dir)
    assert model.labels == "fer2013"  # the labels' table would give disgust 1.5%; the tree gives it 6 of 15
    shares = np.array([1, 6, 1, 2, 1, 3, 1]) / 15
    np.testing.assert_allclose(model.class_shares(), shares, rtol=1e-12)
    faces = np.random.default_rng(6).integers(0, 256, (4, 48, 48)).astype(np.uint8)
    np.testing.assert_allclose(model.predict_proba(faces, uniform_prior=True),
                               apply_uniform_prior(model.predict_proba(faces), shares), atol=1e-6)


def test_a_class_without_training_faces_is_said(tmp_path, capsys):
    write_face_tree(tmp_path / "faces", {"train": {"angry": 2, "happy": 3, "sad": 1, "neutral": 2},
                                         "val": {"happy": 1, "sad": 1}})
    fit.train(smoke_config(tmp_path / "faces", tmp_path / "runs", holdout=0.0))
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("ferkit train: warning")]
    assert warnings == ["ferkit train: warning: no training faces of disgust, fear, surprise; the model cannot learn "
                        "them"]


def test_bad_data_leaves_no_run_folder(tiny_csv, tmp_path):
    data = tiny_csv({"Training": 4, "PublicTest": 2})
    with pytest.raises(FerkitError, match="absent.csv: no such file"):
        fit.train(smoke_config(data, tmp_path / "runs", ferplus_weight=0.3, ferplus_votes=str(tmp_path / "absent.csv")))
    with pytest.raises(FerkitError, match="no such file or folder"):
        fit.train(smoke_config(tmp_path / "missing.csv", tmp_path / "runs"))
    assert not (tmp_path / "runs").exists()


# --- fine-tuning from a trained model (--init) ---------------------------------------------------

def test_init_copies_every_weight_of_the_named_model(tiny_model_dir):
    from ferkit.models import create_model

    trained = keras.models.model_from_json((tiny_model_dir / "model.json").read_text())
    trained.load_weights(tiny_model_dir / "model.weights.h5")
    keras.utils.set_random_seed(123)  # a fresh net's weights differ from the trained one's
    model = create_model("compact")
    assert not np.allclose(model.get_weights()[0], trained.get_weights()[0])
    fit.load_initial_weights(model, str(tiny_model_dir))
    for mine, theirs in zip(model.get_weights(), trained.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)


def test_init_refuses_another_architecture_or_an_ensemble(tiny_model_dir, tmp_path):
    from ferkit.models import create_model

    with pytest.raises(FerkitError, match=r"^--init .*: its weights do not fit --model seed"):
        fit.load_initial_weights(create_model("seed"), str(tiny_model_dir))
    # a run folder says what it trained, so the error is said in those terms (Keras's talks of nested containers)
    run = tmp_path / "run"
    shutil.copytree(tiny_model_dir, run)
    (run / "train_config.json").write_text(json.dumps({"model": "compact"}))
    with pytest.raises(FerkitError) as error:
        fit.load_initial_weights(create_model("seed"), str(run))
    assert str(error.value) == f"--init {run}: a `compact` run; its weights do not fit --model seed"
    # architectures that take each other's weights still do, whatever the run's record says
    medium = tmp_path / "medium"
    medium.mkdir()
    keras.utils.set_random_seed(3)
    create_model("medium").save_weights(str(medium / "model.weights.h5"))
    (medium / "train_config.json").write_text(json.dumps({"model": "medium"}))
    fit.load_initial_weights(create_model("medium64"), str(medium))
    (tmp_path / "model.onnx").write_bytes((tiny_model_dir / "model.onnx").read_bytes())
    with pytest.raises(FerkitError, match="no model.weights.h5 beside the model"):
        fit.load_initial_weights(create_model("compact"), str(tmp_path))


def test_train_starts_from_the_init_model(tiny_csv, tiny_model_dir, tmp_path, monkeypatch):
    calls = []
    real = fit.load_initial_weights

    def recording(model, spec):
        real(model, spec)
        calls.append((spec, [w.copy() for w in model.get_weights()]))

    monkeypatch.setattr(fit, "load_initial_weights", recording)
    data = tiny_csv({"Training": 40, "PublicTest": 14})
    fit.train(smoke_config(data, tmp_path, init=str(tiny_model_dir)))
    assert [spec for spec, _ in calls] == [str(tiny_model_dir)]
    trained = keras.models.model_from_json((tiny_model_dir / "model.json").read_text())
    trained.load_weights(tiny_model_dir / "model.weights.h5")
    np.testing.assert_array_equal(calls[0][1][0], trained.get_weights()[0])
    fit.train(smoke_config(data, tmp_path, name="plain"))  # no --init: never called
    assert len(calls) == 1


def test_train_gives_the_callers_dtype_policy_back(tiny_csv, tmp_path):
    data = tiny_csv({"Training": 40, "PublicTest": 14})
    keras.config.set_dtype_policy("mixed_float16")  # the caller's own, unlike anything train() uses
    try:
        fit.train(smoke_config(data, tmp_path, precision="mixed_bfloat16"))
        assert keras.config.dtype_policy().name == "mixed_float16"
        with pytest.raises(FerkitError, match="unknown augmentation"):  # a failed run gives it back too
            fit.train(smoke_config(data, tmp_path, name="bad", precision="float32", augment="wild"))
        assert keras.config.dtype_policy().name == "mixed_float16"
    finally:
        keras.config.set_dtype_policy("float32")


# --- early stopping: patience by schedule, 0 = never ----------------------------------------------

@pytest.mark.parametrize("schedule, given, expected", [
    ("plateau", None, 10), ("cosine", None, 0), ("cosine", 7, 7), ("plateau", 0, 0), ("plateau", 3, 3)])
def test_early_stopping_default_follows_the_schedule(schedule, given, expected):
    from ferkit.models import get_spec

    cfg = TrainConfig(schedule=schedule, early_stopping=given)
    assert fit.early_stopping_patience(cfg, get_spec("compact")) == expected


def test_early_stopping_zero_never_stops_and_one_stops_at_the_first_flat_epoch(tiny_csv, tmp_path):
    """A learning rate of 1e-12 leaves the holdout accuracy flat: patience 1 stops after epoch 2 of 4,
    patience 0 (once patience 'stop at the first flat epoch' in Keras) runs all 4."""
    data = tiny_csv({"Training": 96, "PublicTest": 8})
    runs = {}
    for patience in (0, 1):
        cfg = smoke_config(data, tmp_path, name=f"p{patience}", epochs=4, holdout=0.25, optimizer="adam",
                           learning_rate=1e-12, schedule="plateau", early_stopping=patience)
        runs[patience] = fit.train(cfg)["epochs_run"]
    assert runs == {0: 4, 1: 2}


# --- a moving average of the weights (--ema) -----------------------------------------------------

@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
def test_ema_reaches_every_optimizer_and_is_off_by_default(optimizer):
    from ferkit.models import get_spec

    spec = get_spec("compact")
    on = fit.make_optimizer(keras, spec, TrainConfig(optimizer=optimizer, ema=0.995), 10)
    off = fit.make_optimizer(keras, spec, TrainConfig(optimizer=optimizer), 10)
    assert (on.use_ema, on.ema_momentum, off.use_ema) == (True, 0.995, False)


def test_ema_checkpoint_keeps_the_average_not_the_last_weights(tiny_csv, tiny_model_dir, tmp_path):
    """A momentum near 1 keeps the average at the first step's weights, close to the --init model;
    without --ema the same 20 steps carry the weights far from it."""
    data = tiny_csv({"Training": 160, "PublicTest": 14})
    start = keras.models.model_from_json((tiny_model_dir / "model.json").read_text())
    start.load_weights(tiny_model_dir / "model.weights.h5")

    def drift(name, ema):
        fit.train(smoke_config(data, tmp_path, name=name, init=str(tiny_model_dir), epochs=2, batch_size=16,
                               holdout=0.0, optimizer="adam", learning_rate=0.01, ema=ema, early_stopping=5))
        model = keras.models.model_from_json((tmp_path / name / "model.json").read_text())
        model.load_weights(tmp_path / name / "model.weights.h5")
        return np.mean([np.abs(a - b).mean() for a, b in zip(
            [v.numpy() for v in model.trainable_weights], [v.numpy() for v in start.trainable_weights], strict=True)])

    plain, averaged = drift("plain", 0.0), drift("ema", 0.999999)
    assert averaged < plain / 4


def test_jit_compile_reaches_model_compile(tiny_csv, tmp_path, monkeypatch):
    import ferkit.models

    seen = []
    real_create = ferkit.models.create_model

    def recording_create(name, *args, **kwargs):
        model = real_create(name, *args, **kwargs)
        real_compile = model.compile

        def compile(*c_args, **c_kwargs):
            seen.append(c_kwargs.get("jit_compile"))
            return real_compile(*c_args, **{**c_kwargs, "jit_compile": False})  # torch.compile on CPU: minutes

        object.__setattr__(model, "compile", compile)
        return model

    monkeypatch.setattr(ferkit.models, "create_model", recording_create)
    data = tiny_csv({"Training": 40, "PublicTest": 14})
    fit.train(smoke_config(data, tmp_path, name="on", jit_compile=True))
    fit.train(smoke_config(data, tmp_path, name="off"))
    assert seen == [True, False]


# --- --views 2: the network trained as the two-view graph `fast` ships -----------------------------

def decided_net():
    """A random `compact` whose head is scaled from nearly uniform to decided probabilities: the face and its
    mirror image get visibly different ones."""
    from ferkit.models import create_model

    keras.utils.set_random_seed(0)
    net = create_model("compact")
    head = net.get_layer("expression")
    head.kernel.assign(head.kernel * 300)
    return net


def test_two_views_average_the_face_and_its_mirror_image():
    from ferkit.models.layers import averaged_views

    net = decided_net()
    assert averaged_views(net, 1) is net
    faces = np.random.default_rng(5).integers(0, 256, (4, 48, 48, 1)).astype(np.float32)
    plain, mirrored = net.predict(faces, verbose=0), net.predict(faces[:, :, ::-1], verbose=0)
    both = averaged_views(net, 2).predict(faces, verbose=0)
    np.testing.assert_allclose(both, (plain + mirrored) / 2, atol=1e-6)
    assert np.abs(plain - mirrored).max() > 0.01  # a random net is not mirror-symmetric: the check has teeth


def holdout_loss(run_dir, csv_path, holdout, views):
    """Categorical cross-entropy (compact's label smoothing) of the exported network on the run's holdout."""
    from ferkit.models import get_spec

    net = keras.models.model_from_json((run_dir / "model.json").read_text())
    net.load_weights(run_dir / "model.weights.h5")
    _, held = training_faces(csv_path).holdout(holdout, 42)
    faces = held.images[..., None].astype(np.float32)
    probs = net.predict(faces, verbose=0)
    if views == 2:
        probs = (probs + net.predict(faces[:, :, ::-1], verbose=0)) / 2
    smoothing = get_spec("compact").label_smoothing
    targets = held.one_hot() * (1 - smoothing) + smoothing / 7
    return float(np.mean(-(targets * np.log(np.clip(probs, 1e-7, 1))).sum(1)))


def test_train_with_two_views_picks_on_the_pair_and_exports_the_one_view_network(tiny_csv, tmp_path):
    """The holdout loss Keras logs is the two-view graph's, recomputed from the exported one-view network."""
    from ferkit.training.export import export_model

    (tmp_path / "start").mkdir()
    export_model(decided_net(), tmp_path / "start")
    data = tiny_csv({"Training": 96, "PublicTest": 14})
    cfg = smoke_config(data, tmp_path, views=2, holdout=0.25, batch_size=16, init=str(tmp_path / "start"),
                       optimizer="adam", learning_rate=1e-5)
    fit.train(cfg)
    run_dir = fit.run_folder(cfg)
    with open(run_dir / "history.csv", newline="") as handle:
        logged = float(next(csv.DictReader(handle))["val_loss"])
    two, one = holdout_loss(run_dir, data, 0.25, 2), holdout_loss(run_dir, data, 0.25, 1)
    assert logged == pytest.approx(two, abs=1e-4) and abs(one - two) > 1e-2
    exported = json.loads((run_dir / "model.json").read_text())
    assert "mirror" not in json.dumps(exported) and exported["config"]["name"] == "compact"
    assert "two-view graph" in (run_dir / "MODEL_CARD.md").read_text()
    assert json.loads((run_dir / "train_config.json").read_text())["views"] == 2


def test_train_refuses_other_view_counts(tiny_csv, tmp_path):
    data = tiny_csv({"Training": 20, "PublicTest": 14})
    with pytest.raises(FerkitError, match=r"--views 4: expected 1 or 2"):
        fit.train(smoke_config(data, tmp_path, views=4))
    assert not (tmp_path / "smoke").exists()


def test_the_cards_training_time_reads_in_a_unit_that_fits():
    from ferkit.training.export import duration

    assert [duration(s) for s in (9, 59.4, 600, 5399, 9000)] == ["9 s", "59 s", "10 min", "90 min", "2.5 h"]


@pytest.mark.parametrize("epochs, shown", [(1, [1.0]), (2, [1.0, 2.0]), (3, [1.0, 2.0, 3.0]),
                                           (25, [0.0, 5.0, 10.0, 15.0, 20.0, 25.0])])
def test_the_curves_count_epochs_in_whole_numbers(epochs, shown):
    """A 1-epoch run (the notebook's small mode) had ticks 0.96 ... 1.04."""
    from ferkit.evaluation.plots import draw_history

    falling = [1.0 - 0.03 * i for i in range(epochs)]
    fig = draw_history({"loss": falling, "val_loss": [v + 0.1 for v in falling], "accuracy": [0.3] * epochs,
                        "val_accuracy": [0.2] * epochs})
    fig.canvas.draw()
    for ax in fig.axes:
        low, high = ax.get_xlim()
        assert [float(t) for t in ax.get_xticks() if low <= t <= high] == shown
