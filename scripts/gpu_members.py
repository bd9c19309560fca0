"""Train several ensemble members at once on one lent GPU, inside a fixed time budget (issue 13).

Each member is exactly `ferkit train` (the same TrainConfig the CLI builds, the same `train()`);
this driver only
  1. loads FER2013 from a packed copy: the 85 MB CSV does not fit the device's 64 MiB transfer;
  2. picks --epochs from a timed calibration, so the cosine schedule ends before the deadline
     (a schedule cut short by a timeout would leave the learning rate high and the net worse);
  3. leaves export and scoring to the project CPU (`finish`), where the shipped files are made.

  here:    python scripts/gpu_members.py pack .gpu          # data for the device
  device:  python scripts/gpu_members.py train NAME --pack .gpu --out runs-gpu --deadline UNIX_TIME
  device:  python scripts/gpu_members.py strip runs-gpu/NAME    # the best weights alone, for the trip back
  here:    python scripts/gpu_members.py finish runs-gpu/NAME --data ../shared/data/fer2013/fer2013.csv.gz
"""

from __future__ import annotations

import argparse
import json
import lzma
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import numpy as np  # noqa: E402

from ferkit.config import TrainConfig  # noqa: E402
from ferkit.data import FaceDataset, load_dataset  # noqa: E402

# name -> the flags of `ferkit train` that differ from the defaults (besides --epochs, picked here).
# Diversity on purpose: width (vgg / medium / compact), augmentation, optimiser, seed.
MEMBERS = {
    "g1-vgg-sgd-s1": dict(model="vgg", optimizer="sgd", learning_rate=0.1, batch_size=128, augment="strong", seed=1),
    "g2-medium-sgd-s2": dict(model="medium", optimizer="sgd", learning_rate=0.1, batch_size=128, augment="strong", seed=2),
    "g3-medium-sgd-std-s3": dict(model="medium", optimizer="sgd", learning_rate=0.1, batch_size=128,
                                 augment="standard", seed=3),
    "g4-compact-adamw-s4": dict(model="compact", optimizer="adamw", learning_rate=3e-3, batch_size=128,
                                augment="strong", seed=4),
    "g6-compact-adamw-s6": dict(model="compact", optimizer="adamw", learning_rate=3e-3, batch_size=128,
                                augment="strong", seed=6),
    "g7-compact-adamw-s8": dict(model="compact", optimizer="adamw", learning_rate=3e-3, batch_size=128,
                                augment="standard", seed=8),
    "g5-compact-sgd-s5": dict(model="compact", optimizer="sgd", learning_rate=0.1, batch_size=128,
                              augment="strong", seed=5),
    # ninth session: the fifth's lesson (eager Keras on torch is launch-bound on an H200, and five
    # processes at once contend): three members, batch 256 to halve the launches per epoch, --ema
    "g8-compact-ema-s51": dict(model="compact", optimizer="adamw", learning_rate=3e-3, batch_size=256,
                               augment="strong", ema=0.999, seed=51),
    "g9-compact-ema-s52": dict(model="compact", optimizer="adamw", learning_rate=2.5e-3, batch_size=256,
                               augment="strong", ema=0.999, seed=52),
    "g10-medium-sgd-ema-s53": dict(model="medium", optimizer="sgd", learning_rate=0.1, batch_size=256,
                                   augment="strong", ema=0.999, seed=53),
    # the same session's second call: g8's 38 epochs continued alone on a second, lower cosine
    "g11-compact-g8ft-s55": dict(model="compact", optimizer="adamw", learning_rate=1e-3, batch_size=256,
                                 augment="strong", ema=0.998, init="runs-gpu/g8-compact-ema-s51", seed=55),
    # twentieth session (runs/s20-gpu-plan.md): two wide members alone on the GPU for the whole call, both with
    # --augment real (members without it dragged the ensemble down on small and blurred faces, session 19);
    # EMA 0.998: a 500-step time constant, under a tenth of the run (the ninth session's lesson)
    "g12-vgg-real-s61": dict(model="vgg", optimizer="sgd", learning_rate=0.05, batch_size=256,
                             augment="real", ema=0.998, seed=61),
    "g13-medium-real-s62": dict(model="medium", optimizer="adamw", learning_rate=3e-3, batch_size=256,
                                augment="real", ema=0.998, seed=62),
    # the same session's second call (g11's lesson: a second, lower cosine added 2 points to g8): g13 continued
    "g14-medium-g13ft-s63": dict(model="medium", optimizer="adamw", learning_rate=1e-3, batch_size=256,
                                 augment="real", ema=0.995, init=".gpu/init/g13-medium-real-s62", seed=63),
    # thirty-ninth session (runs/m37-plan.md): SAM from scratch, the test two CPU SAM cycles (m36, m37) could not
    # give: g12's recipe with --sam 0.05, to train beside g12 itself (MEMBERS="g12-vgg-real-s61 g15-vgg-sam-s401")
    "g15-vgg-sam-s401": dict(model="vgg", optimizer="sgd", learning_rate=0.05, batch_size=256,
                             augment="real", ema=0.998, sam=0.05, seed=401),
}
PER_EPOCH_EXTRA_S = 1.5  # checkpoint + backup writes and the live plot, per epoch
SAFETY = 1.1  # calibration runs before all members train at once: leave room for contention
SETUP_S = 15  # train(): model build, compile, first steps (cuDNN autotuning)


def cli_command(cfg: TrainConfig) -> str:
    flags = [f"--model {cfg.model}", f"--optimizer {cfg.optimizer}", f"--learning-rate {cfg.learning_rate:g}",
             f"--batch-size {cfg.batch_size}", f"--epochs {cfg.epochs}", f"--augment {cfg.augment}",
             f"--seed {cfg.seed}", f"--early-stopping {cfg.early_stopping}", f"--out {cfg.out}", f"--name {cfg.name}"]
    flags += ["--jit-compile"] * cfg.jit_compile + [f"--ema {cfg.ema:g}"] * bool(cfg.ema)
    flags += [f"--init {cfg.init}"] * bool(cfg.init) + [f"--sam {cfg.sam:g}"] * bool(cfg.sam)
    return "ferkit train --data ../shared/data/fer2013/fer2013.csv.gz " + " ".join(flags)


def pack(folder: Path, csv: str, test_rows: int | None = None) -> None:
    dataset = load_dataset(csv)
    if test_rows is not None:  # room for an --init checkpoint in the 64 MiB: PublicTest is scored here, not there
        testing = np.flatnonzero(dataset.usage != "Training")
        dataset = dataset.select(np.isin(np.arange(len(dataset)), testing[test_rows:], invert=True))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "images.xz").write_bytes(lzma.compress(np.ascontiguousarray(dataset.images).tobytes(), preset=9))
    np.savez_compressed(folder / "meta.npz", labels=dataset.labels, usage=dataset.usage, shape=np.asarray(dataset.images.shape))
    print(f"{folder}: {len(dataset)} faces, splits {dataset.splits}")


def unpack(folder: Path) -> FaceDataset:
    meta = np.load(folder / "meta.npz")
    images = np.frombuffer(lzma.decompress((folder / "images.xz").read_bytes()), np.uint8).reshape(meta["shape"])
    return FaceDataset(images, meta["labels"], meta["usage"], "fer2013.csv.gz (packed)")


def seconds_per_epoch(cfg: TrainConfig, dataset: FaceDataset, steps: int) -> float:
    """Time `steps` training steps (after a warm-up) and one holdout pass of this member's model."""
    from ferkit.models import create_model, get_spec
    from ferkit.training.backend import setup_keras
    from ferkit.training.batches import FaceBatches
    from ferkit.training.fit import AUGMENTATIONS, make_optimizer

    keras = setup_keras(cfg.precision)
    train_set, val_set = dataset.split("Training").holdout(cfg.holdout, cfg.holdout_seed)
    batches = FaceBatches(train_set.images, train_set.one_hot(), cfg.batch_size, AUGMENTATIONS[cfg.augment], seed=99)
    model = create_model(cfg.model)
    model.compile(optimizer=make_optimizer(keras, get_spec(cfg.model), cfg, len(batches)),
                  loss="categorical_crossentropy", jit_compile=cfg.jit_compile)
    model.fit(batches, epochs=1, steps_per_epoch=steps, verbose=0)  # warm-up
    started = time.time()
    model.fit(batches, epochs=1, steps_per_epoch=steps, verbose=0)
    per_step = (time.time() - started) / steps
    started = time.time()
    model.predict(val_set.images[..., None].astype(np.float32), batch_size=256, verbose=0)
    validation = time.time() - started
    del model
    keras.backend.clear_session()
    return SAFETY * (per_step * len(batches) + validation) + PER_EPOCH_EXTRA_S


def train_member(name: str, pack_dir: Path, out: str, deadline: float, steps: int, limit: int | None,
                 max_epochs: int) -> None:
    import torch

    from ferkit.training import fit

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "3")))
    torch.backends.cudnn.benchmark = True  # fixed shapes: cuDNN times its algorithms once per shape
    dataset = unpack(pack_dir)
    if limit:
        dataset = dataset.select(np.arange(len(dataset)) % max(1, len(dataset) // (2 * limit)) == 0)
    cfg = TrainConfig(data="fer2013.csv.gz", out=out, name=name, early_stopping=10_000, **MEMBERS[name])
    epoch_s = seconds_per_epoch(cfg, dataset, steps)
    budget = deadline - time.time() - SETUP_S
    cfg.epochs = max(1, min(max_epochs, math.floor(budget / epoch_s)))
    cfg.early_stopping = cfg.epochs  # never stop a cosine schedule early: the last epochs are its best
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    print(f"{name}: {epoch_s:.1f} s per epoch on {device}, {budget:.0f} s left: {cfg.epochs} epochs", flush=True)

    fit.load_dataset = lambda *args, **kwargs: dataset  # the packed copy of the same rows, same order
    fit.export_run = lambda *args, **kwargs: None  # exported and scored on the project CPU (`finish`)

    # what `finish` needs to write the card, also when the deadline's `timeout` ends the run early
    Path(out).mkdir(parents=True, exist_ok=True)
    at_once = os.environ.get("GPU_AT_ONCE", len(MEMBERS))  # set by gpu_members.sh: the members of this call
    (Path(out) / f"{name}.device.json").write_text(json.dumps({"hardware": f"{device} (GPU), {at_once} members at once",
                                                     "started": time.time(), "command": cli_command(cfg)}))
    fit.score_run = lambda *args, **kwargs: {"accuracy": float("nan"), "accuracy_tta": float("nan")}
    fit.train(cfg, command=cli_command(cfg))


def strip(run_dir: Path) -> None:
    """Rewrite the best checkpoint without the optimizer's state (a third to a half of the size)."""
    from ferkit.models import create_model
    from ferkit.training.backend import setup_keras
    from ferkit.training.export import CHECKPOINT_FILE

    keras = setup_keras("float32")
    config = json.loads((run_dir / "train_config.json").read_text())
    model = create_model(config["model"])
    model.load_weights(run_dir / CHECKPOINT_FILE)
    model.save_weights(run_dir / CHECKPOINT_FILE)
    keras.backend.clear_session()


def finish(run_dir: Path, dataset: FaceDataset) -> None:
    """Export the best checkpoint to model.json/.weights.h5/.onnx and score it on PublicTest."""
    from ferkit.models import create_model
    from ferkit.training.backend import setup_keras
    from ferkit.training.callbacks import read_history
    from ferkit.training.export import export_run, score_run

    config = json.loads((run_dir / "train_config.json").read_text())
    device = json.loads((run_dir.parent / f"{run_dir.name}.device.json").read_text())
    val_accuracy = read_history(run_dir / "history.csv")["val_accuracy"]
    train_set, held = dataset.split("Training").holdout(config["holdout"], config["holdout_seed"])
    test = dataset.split("PublicTest")
    keras = setup_keras("float32")
    parameters = create_model(config["model"]).count_params()
    keras.backend.clear_session()
    info = {
        "model": config["model"], "parameters": int(parameters), "data": "fer2013.csv.gz",
        "train_split": "Training", "val_split": "PublicTest", "pick_rows": len(held), "train_rows": len(train_set),
        "pick_split": f"Training holdout ({config['holdout']:.0%}, seed {config['holdout_seed']})",
        "epochs_run": len(val_accuracy), "best_epoch": int(np.argmax(val_accuracy)) + 1,
        # from the start of training to the last epoch logged (tar keeps the file times)
        "train_seconds": round((run_dir / "history.csv").stat().st_mtime - device["started"]),
        "hardware": device["hardware"], "command": device["command"], "train": config,
    }
    export_run(run_dir, info["model"])
    metrics = score_run(run_dir, test.images, test.hard_labels, "PublicTest", info)
    print(f"{run_dir.name}: best epoch {info['best_epoch']} of {info['epochs_run']} (planned {config['epochs']}), "
          f"PublicTest {metrics['accuracy']:.4f} (TTA {metrics['accuracy_tta']:.4f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack")
    p.add_argument("folder", type=Path)
    p.add_argument("--data", default="../shared/data/fer2013/fer2013.csv.gz")
    p.add_argument("--test-rows", type=int, default=None, help="keep only this many PublicTest rows")
    p = sub.add_parser("train")
    p.add_argument("name", choices=sorted(MEMBERS))
    p.add_argument("--pack", type=Path, required=True)
    p.add_argument("--out", default="runs-gpu")
    p.add_argument("--deadline", type=float, required=True, help="unix time by which training must end")
    p.add_argument("--steps", type=int, default=30, help="calibration steps")
    p.add_argument("--limit", type=int, default=None, help="about this many faces per split (smoke test)")
    p.add_argument("--max-epochs", type=int, default=300)
    p = sub.add_parser("strip")
    p.add_argument("run_dirs", type=Path, nargs="+")
    p = sub.add_parser("finish")
    p.add_argument("run_dirs", type=Path, nargs="+")
    p.add_argument("--data", default="../shared/data/fer2013/fer2013.csv.gz")
    args = parser.parse_args()
    if args.command == "pack":
        pack(args.folder, args.data, args.test_rows)
    elif args.command == "train":
        train_member(args.name, args.pack, args.out, args.deadline, args.steps, args.limit, args.max_epochs)
    elif args.command == "strip":
        for run_dir in args.run_dirs:
            strip(run_dir)
    else:
        dataset = load_dataset(args.data)
        for run_dir in args.run_dirs:
            finish(run_dir, dataset)


if __name__ == "__main__":
    main()
