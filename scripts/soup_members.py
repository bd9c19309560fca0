"""Average run folders' weights into one network: a uniform model soup (Wortsman et al. 2022).

    python scripts/soup_members.py --out runs/soup-m25-m17 members/m25-m18-sgd-s271 members/m17-m16-restart-s191

Every variable is the mean of the members' (BatchNorm moving statistics included: re-estimating them on Training
faces lowered every soup tried in session 40). The soup is a run folder (model.json, model.weights.h5, model.onnx)
that `ferkit evaluate`, `runs/s36_views.py` and `scripts/pick_ensemble.py` take like any member, and costs what one
member costs per face. It only works for members in one basin: nets continued from one start with short cycles (m28
+ m36; m25 + m17). Soups of nets trained apart land between their ingredients (session 13).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402


def load_member(folder: Path):
    import keras

    from ferkit.inference.classifier import JSON_FILE, WEIGHTS_FILE

    missing = [name for name in (JSON_FILE, WEIGHTS_FILE) if not (folder / name).is_file()]
    if missing:
        raise ValueError(f"{folder}: no {' or '.join(missing)} (scripts/keras_from_onnx.py rebuilds the weights of "
                         "an ONNX-only member)")
    net = keras.models.model_from_json((folder / JSON_FILE).read_text())
    net.load_weights(folder / WEIGHTS_FILE)
    return net


def soup_weights(nets) -> list[np.ndarray]:
    """The mean of each variable over `nets`, which must share one architecture."""
    weights = [net.get_weights() for net in nets]
    shapes = [[w.shape for w in ws] for ws in weights]
    for net, shape in zip(nets[1:], shapes[1:]):
        if shape != shapes[0]:
            raise ValueError(f"{net.name} does not have {nets[0].name}'s architecture")
    return [np.mean(variables, axis=0, dtype=np.float64).astype(variables[0].dtype) for variables in zip(*weights)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("members", nargs="+", type=Path, help="run folders with model.json and model.weights.h5")
    parser.add_argument("--out", required=True, type=Path, help="folder for the soup's model.json, weights and ONNX")
    args = parser.parse_args(argv)
    if len(args.members) < 2:
        parser.error("a soup needs two members or more")

    from ferkit.training.backend import setup_keras

    setup_keras("float32")
    from ferkit.training.export import export_model

    try:
        nets = [load_member(folder) for folder in args.members]
        soup = nets[0]
        soup.set_weights(soup_weights(nets))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    export_model(soup, args.out)
    (args.out / "soup.txt").write_text("uniform soup of " + " ".join(map(str, args.members)) + "\n")
    print(f"{len(nets)} members -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
