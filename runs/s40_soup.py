"""Model soups (runs/soup40-plan.md): the mean of several run folders' Keras variables, exported as a run folder.

    python runs/s40_soup.py OUT FOLDER... [--bn-faces 4096]

--bn-faces N: BatchNorm moving statistics re-estimated on N Training faces outside the holdout (dropout off,
each batch weighted equally) instead of averaged.
"""
import argparse
import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")
import numpy as np  # noqa: E402

from ferkit.training.backend import setup_keras  # noqa: E402
from ferkit.training.export import export_model  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("out")
parser.add_argument("folders", nargs="+")
parser.add_argument("--bn-faces", type=int, default=0)
args = parser.parse_args()
keras = setup_keras("float32")


def load(folder):
    net = keras.models.model_from_json((Path(folder) / "model.json").read_text())
    net.load_weights(Path(folder) / "model.weights.h5")
    return net


nets = [load(f) for f in args.folders]
soup = nets[0]
soup.set_weights([np.mean(ws, axis=0) for ws in zip(*(n.get_weights() for n in nets))])
if args.bn_faces:
    import torch
    from ferkit.data import load_dataset
    rest = load_dataset("../shared/data/fer2013/fer2013.csv.gz").split("Training").holdout(0.1, 42)[0]
    faces = rest.images[np.random.default_rng(0).permutation(len(rest))[:args.bn_faces]]
    bns = [layer for layer in soup.layers if type(layer).__name__ == "BatchNormalization"]
    drops = {layer: layer.rate for layer in soup.layers if type(layer).__name__ == "Dropout"}
    momenta = {bn: bn.momentum for bn in bns}
    for layer in drops:
        layer.rate = 0.0
    with torch.no_grad():
        for k, start in enumerate(range(0, len(faces), 256), 1):
            for bn in bns:
                bn.momentum = (k - 1) / k  # running mean of the batches' statistics
            soup(faces[start:start + 256, ..., None].astype(np.float32), training=True)
    for bn, momentum in momenta.items():
        bn.momentum = momentum
    for layer, rate in drops.items():
        layer.rate = rate
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)
export_model(soup, out)
if (Path(args.folders[0]) / "train_config.json").exists():
    shutil.copy(Path(args.folders[0]) / "train_config.json", out / "train_config.json")
(out / "soup.txt").write_text("mean of " + " ".join(args.folders) + f" bn_faces={args.bn_faces}\n")
print("wrote", out)
