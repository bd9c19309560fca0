"""Probabilities users can trust: temperature scaling fitted on the Training holdout.

`ferkit calibrate` fits one temperature per model on the faces that picked its epoch (never on
the split it reports), writes it beside the model (calibration.json, which the classifier
applies), and reports the expected calibration error (ECE) before and after on the reported split.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..data.dataset import check_holdout
from ..errors import ModelError
from ..files import atomic_output, check_output_folder
from ..inference.classifier import (CALIBRATION_FILE, CARD_FILE, JSON_FILE, ONNX_FILE, FacialExpressionModel,
                                    apply_temperature, describes_another_graph, run_config)

ECE_BINS = 15
TEMPERATURE_RANGE = (0.25, 8.0)  # fit_temperature's search range
# The NLL's best temperature can move a well-calibrated model's binned ECE up a little by chance: only a
# clear loss (more than this, in ECE) is refused
ECE_LOSS_ALLOWED = 0.01
MIN_FIT_FACES = 200  # `ferkit calibrate` refuses to replace a temperature fitted on fewer


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by their share of faces."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def negative_log_likelihood(probs: np.ndarray, labels: np.ndarray) -> float:
    return float(-np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, None)).mean())


def fit_temperature(probs: np.ndarray, labels: np.ndarray, low: float = TEMPERATURE_RANGE[0],
                    high: float = TEMPERATURE_RANGE[1]) -> float:
    """The T minimising the NLL of softmax(log p / T): golden-section search on log T (the NLL is
    convex in 1/T, so one minimum)."""
    def nll(log_t: float) -> float:
        return negative_log_likelihood(apply_temperature(probs, float(np.exp(log_t))), labels)

    a, b = np.log(low), np.log(high)
    ratio = (np.sqrt(5) - 1) / 2
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = nll(c), nll(d)
    for _ in range(60):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = nll(c)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = nll(d)
    return float(np.exp((a + b) / 2))


def calibration_report(probs: np.ndarray, labels: np.ndarray, temperature: float) -> dict:
    after = apply_temperature(probs, temperature)
    return {"ece_before": expected_calibration_error(probs, labels), "ece_after": expected_calibration_error(after, labels),
            "nll_before": negative_log_likelihood(probs, labels), "nll_after": negative_log_likelihood(after, labels)}


def edge_problem(temperature: float, faces: int) -> str | None:
    """What is wrong with a temperature at (within 1% of) an edge of the search range, or None."""
    low, high = TEMPERATURE_RANGE
    if low * 1.01 < temperature < high / 1.01:
        return None
    return (f"the fitted temperature {temperature:.3f} is at an edge of its search range ({low:g} to {high:g}): "
            f"{faces:,} holdout faces do not pin it down")


def check_fit(temperature: float, probs: np.ndarray, labels: np.ndarray) -> None:
    """ModelError when a fitted temperature should not replace the model's: at an edge of the search range (the
    holdout did not pin it down: 2 faces gave 0.25 in an audit), fitted on too few faces (31 made an audit's
    PublicTest calibration error worse), or clearly worse calibrated on the faces it was fitted on."""
    if len(labels) < MIN_FIT_FACES:
        raise ModelError(f"{len(labels):,} holdout faces are too few to fit a temperature (at least {MIN_FIT_FACES}: "
                         "more Training rows, or a larger --holdout); nothing written")
    problem = edge_problem(temperature, len(labels))
    if problem:
        raise ModelError(f"{problem}; nothing written")
    before = expected_calibration_error(probs, labels)
    after = expected_calibration_error(apply_temperature(probs, temperature), labels)
    if after > before + ECE_LOSS_ALLOWED:
        raise ModelError(f"the fitted temperature {temperature:.3f} makes the expected calibration error on the "
                         f"{len(labels):,} holdout faces worse ({before:.2%} -> {after:.2%}); nothing written")


def run_holdout(folder: Path, recorded: dict, holdout: float | None, holdout_seed: int | None) -> tuple[float, int]:
    """The holdout to fit on: the one the model's run set aside (`recorded`, its train_config.json), which a
    different --holdout or --holdout-seed would mix with faces the model learnt; (0.1, 42), the members' own,
    without a record (ensembles, other models)."""
    if "holdout" not in recorded:
        return (0.1 if holdout is None else holdout), (42 if holdout_seed is None else holdout_seed)
    then, seed = float(recorded["holdout"]), int(recorded.get("holdout_seed", 42))
    if not then:
        raise ModelError(f"{folder}: was trained with --holdout 0, on every training face: none is left to fit a "
                         "temperature on without flattering it")
    if (holdout is not None and holdout != then) or (holdout_seed is not None and holdout_seed != seed):
        raise ModelError(f"{folder}: was trained beside a holdout of {then:g} drawn with seed {seed}; another draw "
                         "would fit on faces it learnt (drop --holdout and --holdout-seed)")
    return then, seed


def calibrate(model: str | Path, data: str | Path, holdout: float | None = None, holdout_seed: int | None = None,
              report_split: str | None = None, labels: str | None = None, card: bool = False,
              refuse_poor_fit: bool = False) -> dict:
    """Fit `model`'s temperature on the training split's holdout of `data` (against `labels`: the label set the
    model was trained on); write calibration.json in its folder, and with `card` the calibration section
    of its MODEL_CARD.md. The holdout is the model's run's own (see run_holdout). `report_split`: by default
    `ferkit evaluate`'s (PublicTest, or an image tree's test or val). Everything is checked before the fit, so a
    refusal writes nothing; with `refuse_poor_fit` (`ferkit calibrate`), a fit that check_fit() refuses writes
    nothing either."""
    from ..data import default_splits, load_dataset
    from .evaluate import default_eval_split

    if holdout is not None:
        check_holdout(holdout)
    classifier = FacialExpressionModel.load(model)
    # the classifier applies a folder's calibration.json to the folder's own model file only
    if classifier.path.parent != classifier.folder or classifier.path.name not in (ONNX_FILE, JSON_FILE):
        raise ModelError(f"{model}: a calibration belongs to a model folder's own {ONNX_FILE} or {JSON_FILE}; "
                         "pass a model folder or a bundled name")
    if classifier.path.suffix == ".json" and describes_another_graph(classifier.card):
        raise ModelError(f"{model}: this folder's calibration belongs to its {ONNX_FILE} (a graph with members or "
                         f"test-time views inside), not to the network in its {JSON_FILE}; calibrate the folder")
    if labels and labels != classifier.labels and classifier.labels_recorded:
        raise ModelError(f"{model}: learnt the {classifier.labels} labels; its temperature is fitted against those "
                         f"(drop --labels {labels}: fitting on others would also make it say it learnt {labels})")
    check_output_folder(classifier.folder, (CALIBRATION_FILE, CARD_FILE))
    recorded = run_config(classifier.folder)
    holdout, holdout_seed = run_holdout(classifier.folder, recorded, holdout, holdout_seed)
    check_holdout(holdout)
    labels = labels or classifier.labels  # fitted against the labels it learnt, unless told otherwise
    # FER+ labels as the run took them (majority drops faces without one, soft keeps them): its holdout was drawn
    # among those rows, by those labels (a FER+ vote weight changes neither)
    own = labels == "ferplus" and recorded.get("labels") == "ferplus"
    dataset = load_dataset(data, labels, recorded.get("ferplus_votes") if own else None,
                           (recorded.get("ferplus_mode") or "majority") if own else "majority")
    # the run's own training split, cut as its --limit cut it: the holdout is drawn from those rows only
    train_split = recorded.get("train_split") or (
        "Training" if "Training" in dataset.splits else default_splits(dataset)[0])  # or a tree's train
    rows = dataset.split(train_split)
    if recorded.get("limit"):
        rows = rows.select(np.arange(len(rows)) < int(recorded["limit"]))
    _, fit_set = rows.holdout(holdout, holdout_seed)
    report_split = report_split or default_eval_split(dataset)
    reported = dataset.split(report_split)
    fit_probs = classifier.predict_proba(fit_set.images, calibrated=False)
    temperature = fit_temperature(fit_probs, fit_set.hard_labels)
    if refuse_poor_fit:
        check_fit(temperature, fit_probs, fit_set.hard_labels)
    result = {
        "temperature": round(temperature, 4),
        "labels": labels,
        "fit_on": f"{train_split} holdout ({holdout:.0%}, seed {holdout_seed}, {len(fit_set):,} faces)",
        "fit_faces": len(fit_set),
        "reported_on": f"{report_split} ({len(reported):,} faces)",
        **{k: round(v, 4) for k, v in calibration_report(
            classifier.predict_proba(reported.images, calibrated=False), reported.hard_labels, temperature).items()},
    }
    with atomic_output(classifier.folder / CALIBRATION_FILE) as partial:
        partial.write_text(json.dumps(result, indent=2) + "\n")
    if card:
        write_card_section(classifier.folder / CARD_FILE, result)
    return result


CARD_SECTION = "## Calibration"


def write_card_section(card: Path, result: dict) -> None:
    """Add (or replace) the card's calibration section."""
    text = card.read_text() if card.is_file() else ""
    text = text.split(f"\n{CARD_SECTION}\n")[0].rstrip("\n")
    section = [
        "", CARD_SECTION, "",
        f"Temperature {result['temperature']:.3f}, fitted on the {result['fit_on']} "
        f"(`ferkit calibrate`); every score the product shows is calibrated by it. "
        f"Expected calibration error on {result['reported_on']}, {ECE_BINS} bins: "
        f"**{result['ece_before']:.2%} before, {result['ece_after']:.2%} after** "
        f"(negative log-likelihood {result['nll_before']:.3f} -> {result['nll_after']:.3f}). "
        "The predicted class does not change.", "",
    ]
    with atomic_output(card) as partial:
        partial.write_text(text + "\n" + "\n".join(section))
