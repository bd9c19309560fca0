"""Look at a data set before training: sample faces per class, and how unbalanced the classes are."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data import FaceDataset, default_splits, load_dataset
from ..errors import DataError, FerkitError
from ..files import atomic_output, check_output_folder
from ..labels import CLASS_NAMES
from .plots import new_figure

# The sample grid is 7 x N subplots, drawn one by one: 50 a class took 7 s (8: 2 s) on a 2-core machine;
# 100,000 ran until killed.
MAX_PER_CLASS = 50
OUTPUT_FILES = ("samples.png", "class_balance.png")
LABEL_WIDTH, MIN_WIDTH = 0.9, 3.0  # samples.png: inches for the row labels, and for the whole figure at least


def explore(data_path: str | Path, out_dir: str | Path, per_class: int = 8) -> dict[str, dict[str, int]]:
    """Write samples.png (up to `per_class` faces a class, at most MAX_PER_CLASS) and class_balance.png to
    out_dir, print the counts; returns {split: {class: count}}."""
    if not 1 <= per_class <= MAX_PER_CLASS:
        raise FerkitError(f"--per-class {per_class}: expected 1 to {MAX_PER_CLASS} sample faces per class")
    out_dir = check_output_folder(out_dir, OUTPUT_FILES)
    dataset = load_dataset(data_path)
    counts = {split: dataset.split(split).class_counts() for split in dataset.splits}
    train_split = training_split(dataset)
    with atomic_output(out_dir / OUTPUT_FILES[0]) as partial:
        plot_samples(dataset.split(train_split), partial, per_class, f"{train_split} samples")
    with atomic_output(out_dir / OUTPUT_FILES[1]) as partial:
        plot_class_balance(counts, partial)
    print(format_counts(counts))
    print(describe_imbalance(counts[train_split], train_split))
    print(f"wrote {out_dir / 'samples.png'} and {out_dir / 'class_balance.png'}")
    return counts


def training_split(dataset: FaceDataset) -> str:
    """The split a model would train on; a data set with no recognisable one shows its first split."""
    try:
        return default_splits(dataset)[0]
    except DataError:
        return dataset.splits[0]


def format_counts(counts: dict[str, dict[str, int]]) -> str:
    width = max(10, *(len(split) + 2 for split in counts))
    lines = [f"{'split':<{width}}" + "".join(f"{name:>10}" for name in CLASS_NAMES) + f"{'total':>10}"]
    for split, per_class in counts.items():
        values = [per_class[name] for name in CLASS_NAMES]
        lines.append(f"{split:<{width}}" + "".join(f"{v:>10d}" for v in values) + f"{sum(values):>10d}")
    return "\n".join(lines)


def describe_imbalance(per_class: dict[str, int], split: str) -> str:
    """Largest / smallest class count, the number that decides whether class weights are worth it."""
    largest, smallest = max(per_class, key=per_class.get), min(per_class, key=per_class.get)
    if per_class[smallest] == 0:
        return f"imbalance ratio ({split}): infinite, {smallest} has no faces"
    ratio = per_class[largest] / per_class[smallest]
    return f"imbalance ratio ({split}): {ratio:.1f} ({largest} {per_class[largest]} / {smallest} {per_class[smallest]})"


def plot_samples(dataset: FaceDataset, path: Path, per_class: int, title: str) -> Path:
    """One row per class, `per_class` faces drawn at random (fixed seed, so reruns match); no more columns
    than the largest class has faces, so a small data set gets no empty axes."""
    rng = np.random.default_rng(0)
    labels = dataset.hard_labels
    per_class = max(1, min(per_class, int(np.bincount(labels, minlength=len(CLASS_NAMES)).max())))
    # 1.1 inches a face, and room for the row labels ("surprise\n(4002)") and the title beside them: sized by
    # the faces alone, 1 column was 99 pixels wide, its title clipped to "aining sample", the faces specks
    fig = new_figure(figsize=(max(MIN_WIDTH, LABEL_WIDTH + per_class * 1.1), len(CLASS_NAMES) * 1.2))
    axes = fig.subplots(len(CLASS_NAMES), per_class, squeeze=False)
    for class_id, row in enumerate(axes):
        rows = np.flatnonzero(labels == class_id)
        chosen = rng.choice(rows, size=min(per_class, len(rows)), replace=False)
        for ax, face_row in zip(row, chosen):
            ax.imshow(dataset.images[face_row], cmap="gray", vmin=0, vmax=255)
        for ax in row:
            ax.set_box_aspect(1)  # square like the faces even when empty: a class without faces keeps its label in line
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
        row[0].set_ylabel(f"{CLASS_NAMES[class_id]}\n({len(rows)})", rotation=0, ha="right", va="center")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return path


def plot_class_balance(counts: dict[str, dict[str, int]], path: Path) -> Path:
    """Grouped bars: one group per class, one bar per split, each labelled with its count."""
    x = np.arange(len(CLASS_NAMES))
    width = 0.8 / len(counts)
    fig = new_figure(figsize=(10, 4.5))
    ax = fig.subplots()
    for i, (split, per_class) in enumerate(counts.items()):
        bars = ax.bar(x + (i - (len(counts) - 1) / 2) * width, [per_class[n] for n in CLASS_NAMES], width,
                      label=split)
        ax.bar_label(bars, fontsize=7)
    ax.set_xticks(x, CLASS_NAMES)
    ax.set_ylabel("faces")
    ax.set_title("Class balance per split")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return path
