"""The uniform prior's figures on the real-face development set (tw-faces) are what docs/real-faces.md says:
counted face by face through the benchmark's own detect-and-crop, with the bundled `accurate`."""

from pathlib import Path

import numpy as np
import pytest
from conftest import load_script

from ferkit.inference.classifier import FacialExpressionModel
from ferkit.labels import CLASS_NAMES

ROOT = Path(__file__).resolve().parents[1]
bench = load_script("bench/bench_real_faces.py")


@pytest.mark.shared
def test_the_uniform_prior_finds_disgust_on_tw_faces_as_the_docs_say(shared_dir):
    crops, labels, total = bench.tw_faces(shared_dir)
    assert (total, len(crops)) == (1223, 1223)  # YuNet finds a face in every photo
    model = FacialExpressionModel.load("accurate")
    plain = model.predict_proba(crops).argmax(1)
    uniform = model.predict_proba(crops, uniform_prior=True).argmax(1)
    right = {name: [int(((p == labels) & (labels == c)).sum()) for c in range(len(CLASS_NAMES))]
             for name, p in (("training", plain), ("uniform", uniform))}
    assert right == {"training": [106, 30, 26, 214, 114, 90, 67], "uniform": [106, 105, 29, 211, 100, 94, 67]}
    assert (int((plain == labels).sum()), int((uniform == labels).sum())) == (647, 712)
    table = (ROOT / "docs" / "real-faces.md").read_text()
    assert f"| `accurate` | training (default) | {647 / 1223:.1%} |" in table  # 52.9%
    assert f"| `accurate` | uniform | **{712 / 1223:.1%}** |" in table  # 58.2%
    assert np.mean(uniform[labels == 1] == 1) > 3 * np.mean(plain[labels == 1] == 1)  # disgust, the rarest class
