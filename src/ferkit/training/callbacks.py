"""Callbacks: live loss/accuracy plots, and per-epoch reseeding of the training batches."""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path

import keras

from ..evaluation.plots import draw_history


def in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and shell.__class__.__name__ == "ZMQInteractiveShell"


def read_history(csv_path: Path) -> dict[str, list[float]]:
    """The CSVLogger's file as {metric: [values per epoch]} (empty if absent)."""
    history: dict[str, list[float]] = {}
    if csv_path.is_file():
        with open(csv_path, newline="") as handle:
            for row in csv.DictReader(handle):
                for key, value in row.items():
                    if key != "epoch" and value not in ("", None):
                        history.setdefault(key, []).append(float(value))
    return history


class LivePlot(keras.callbacks.Callback):
    """Redraws loss/accuracy curves after every epoch: a PNG in the run folder, and inline in Jupyter."""

    def __init__(self, png_path: Path, title: str = "", history: dict | None = None):
        super().__init__()
        self.png_path, self.title = Path(png_path), title
        self.history = {k: list(v) for k, v in (history or {}).items()}

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            if key == "learning_rate" or isinstance(value, (int, float)):
                self.history.setdefault(key, []).append(float(value))
        draw_history(self.history, self.title).savefig(self.png_path, dpi=90)
        if in_notebook():
            from IPython.display import Image, clear_output, display

            clear_output(wait=True)
            # the saved PNG, not the figure: ferkit draws outside pyplot, so whatever backend the
            # notebook uses is left alone
            display(Image(filename=str(self.png_path)))


class ReseedBatches(keras.callbacks.Callback):
    """Tell the training batches which epoch starts, so a resumed run gets the same batches."""

    def __init__(self, batches):
        super().__init__()
        self.batches = batches

    def on_epoch_begin(self, epoch, logs=None):
        self.batches.set_epoch(epoch)


class RandomState(keras.callbacks.Callback):
    """Keeps torch's global random state beside BackupAndRestore's (saved at each epoch's end, restored when a
    resumed fit begins): Dropout draws from it, and a resumed run re-seeded from the start would draw other masks
    than the run it continues."""

    def __init__(self, path: Path):
        super().__init__()
        self.path = Path(path)

    def on_train_begin(self, logs=None):
        if keras.backend.backend() == "torch" and self.path.is_file():
            import torch

            torch.set_rng_state(torch.load(self.path))

    def on_epoch_end(self, epoch, logs=None):
        if keras.backend.backend() == "torch":
            import torch

            self.path.parent.mkdir(parents=True, exist_ok=True)
            torch.save(torch.get_rng_state(), self.path)


class Counters(keras.callbacks.Callback):
    """Keeps the patience counters of EarlyStopping and ReduceLROnPlateau beside BackupAndRestore's state: their
    on_train_begin resets them, so a resumed run would count its patience afresh and stop (or halve the rate)
    later than the run it continues. Put it after them: it restores after their reset, saves after their update."""

    FIELDS = ("wait", "best", "best_epoch", "cooldown_counter")

    def __init__(self, path: Path, watched):
        super().__init__()
        self.path, self.watched = Path(path), list(watched)

    def on_train_begin(self, logs=None):
        try:
            saved = json.loads(self.path.read_text())
            states = saved["states"]
        except (OSError, ValueError, KeyError, TypeError):  # absent, or damaged: the counters start afresh
            return
        # only the state of the epoch the backup resumes at (a stop between the two saves leaves them apart)
        if saved.get("epoch") != (self.model._initial_epoch or 0) or len(states) != len(self.watched):
            return
        for callback, state in zip(self.watched, states):
            for name, value in state.items():
                setattr(callback, name, value)

    def on_epoch_end(self, epoch, logs=None):
        states = [{name: plain(getattr(callback, name)) for name in self.FIELDS if hasattr(callback, name)}
                  for callback in self.watched]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".partial")  # renamed whole: a stop mid-write leaves the last good one
        partial.write_text(json.dumps({"epoch": epoch + 1, "states": states}))
        os.replace(partial, self.path)


def plain(value):
    """A counter or best value as JSON holds it (NumPy scalars as Python numbers)."""
    return value.item() if hasattr(value, "item") else value


class EpochSeconds(keras.callbacks.Callback):
    """Adds each epoch's wall-clock seconds to its logs (before the CSVLogger writes them), so that a run
    resumed any number of times still knows its whole training time: the sum of the history's column."""

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["epoch_seconds"] = time.monotonic() - self.started
