"""Classification metrics (scikit-learn underneath): exact values on a small hand-checked case."""

from __future__ import annotations

import pytest

from ferkit.evaluation.metrics import classification_report, confusion_matrix, format_report

TRUE = [0, 0, 1, 1, 1, 2, 6]
PREDICTED = [0, 1, 1, 1, 2, 2, 0]


def test_confusion_matrix_rows_are_true_classes():
    matrix = confusion_matrix(TRUE, PREDICTED)
    assert matrix.shape == (7, 7)
    assert matrix[0].tolist() == [1, 1, 0, 0, 0, 0, 0]
    assert matrix[1].tolist() == [0, 2, 1, 0, 0, 0, 0]
    assert matrix[6].tolist() == [1, 0, 0, 0, 0, 0, 0]
    assert matrix.sum() == 7 and matrix[:, 0].sum() == 2


def test_report_values():
    report = classification_report(TRUE, PREDICTED, "PublicTest")
    assert (report["split"], report["n"]) == ("PublicTest", 7)
    assert report["accuracy"] == pytest.approx(4 / 7)
    rows = report["per_class"]
    # angry: 1 of 2 predicted right, 1 of 2 found; disgust: 2 of 3 and 2 of 3; fear: 1 of 2, 1 of 1
    assert rows["angry"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert rows["disgust"] == {"precision": 0.6667, "recall": 0.6667, "f1": 0.6667, "support": 3}
    assert rows["fear"] == {"precision": 0.5, "recall": 1.0, "f1": 0.6667, "support": 1}
    assert rows["neutral"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert rows["happy"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    # the macro F1 averages the four classes that have faces, not all seven
    assert report["macro_f1"] == pytest.approx((0.5 + 2 / 3 + 2 / 3 + 0) / 4)
    assert report["confusion"] == confusion_matrix(TRUE, PREDICTED).tolist()


def test_report_of_nothing():
    report = classification_report([], [], "empty")
    assert (report["n"], report["accuracy"], report["macro_f1"]) == (0, 0.0, 0.0)
    assert report["confusion"] == [[0] * 7] * 7


def test_format_report_table():
    text = format_report(classification_report(TRUE, PREDICTED, "PublicTest"))
    lines = text.splitlines()
    assert lines[0] == "split PublicTest: accuracy 0.5714 on 7 faces, macro F1 0.4583"
    assert "disgust        0.667     0.667     0.667         3" in lines
    assert lines[-1].split() == ["neutral", "1", "0", "0", "0", "0", "0", "0"]
