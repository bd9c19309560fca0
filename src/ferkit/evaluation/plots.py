"""Figures (PNG) for evaluation, exploration, training curves and video timelines.

ferkit draws on matplotlib Figure objects, never through pyplot: writing a file then needs no
backend, so a caller's own (a notebook's inline plots, a GUI) is left as it was.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..labels import CLASS_NAMES


def new_figure(**kwargs):
    """A matplotlib Figure outside pyplot (nothing to close, no backend chosen)."""
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def _pyplot():
    """pyplot on the Agg backend, for scripts that want files only. ferkit itself never calls it:
    choosing a backend is the application's business."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_confusion(matrix: np.ndarray, path: str | Path, title: str = "Confusion matrix") -> Path:
    matrix = np.asarray(matrix)
    normalised = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig = new_figure(figsize=(7, 6))
    ax = fig.subplots()
    ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(matrix)):
        for j in range(len(matrix)):
            ax.text(j, i, f"{matrix[i, j]}\n{normalised[i, j]:.0%}", ha="center", va="center", fontsize=7,
                    color="white" if normalised[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(CLASS_NAMES)), CLASS_NAMES, rotation=45, ha="right")
    ax.set_yticks(range(len(CLASS_NAMES)), CLASS_NAMES)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return Path(path)


def plot_history(history: dict[str, list[float]], path: str | Path, title: str = "") -> Path:
    """Loss and accuracy curves, training and validation, one panel each."""
    draw_history(history, title).savefig(path, dpi=90)
    return Path(path)


def draw_history(history: dict[str, list[float]], title: str = ""):
    fig = new_figure(figsize=(11, 4))
    axes = fig.subplots(1, 2)
    for ax, metric in zip(axes, ("loss", "accuracy")):
        for prefix, style in (("", "-"), ("val_", "--")):
            values = history.get(prefix + metric)
            if values:
                ax.plot(range(1, len(values) + 1), values, style, marker="o", markersize=3,
                        label="validation" if prefix else "training")
        ax.set_xlabel("epoch")
        # epochs 1, 2, 3: no 1.2, 1.4 ticks on short runs; min_n_ticks=1, or a 1-epoch run (one integer in
        # view, fewer than the default 2) falls back to 0.96 ... 1.04
        ax.xaxis.get_major_locator().set_params(integer=True, min_n_ticks=1)
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
