"""scripts/gpu_members.py: the packed data is the CSV's rows in the CSV's order, and the command on
each member's card parses back into exactly the configuration that member trained with."""

from __future__ import annotations

import importlib.util
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest

from ferkit.cli import build_parser, train_config_from_args
from ferkit.config import TrainConfig
from ferkit.data import load_dataset

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_members.py"


@pytest.fixture(scope="module")
def gpu_members():
    spec = importlib.util.spec_from_file_location("gpu_members", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_packed_data_round_trips_rows_labels_and_order(gpu_members, tiny_csv, tmp_path):
    csv_path = tiny_csv({"Training": 9, "PublicTest": 4}, gz=True)
    gpu_members.pack(tmp_path / "pack", str(csv_path))
    original, packed = load_dataset(csv_path), gpu_members.unpack(tmp_path / "pack")
    np.testing.assert_array_equal(packed.images, original.images)
    np.testing.assert_array_equal(packed.labels, original.labels)
    assert packed.usage.tolist() == original.usage.tolist() == ["Training"] * 9 + ["PublicTest"] * 4
    # the same rows in the same order give the same holdout, so members pick epochs on the same faces
    np.testing.assert_array_equal(packed.split("Training").holdout(0.3, 42)[1].images,
                                  original.split("Training").holdout(0.3, 42)[1].images)


@pytest.mark.parametrize("name, extra", [("g1-vgg-sgd-s1", {}), ("g3-medium-sgd-std-s3", {}),
                                         ("g6-compact-adamw-s6", {}),
                                         ("g6-compact-adamw-s6", {"ema": 0.999, "jit_compile": True}),
                                         ("g10-medium-sgd-ema-s53", {}), ("g11-compact-g8ft-s55", {}),
                                         ("g15-vgg-sam-s401", {})])
def test_card_command_reproduces_the_member_config(gpu_members, name, extra):
    cfg = TrainConfig(data="../shared/data/fer2013/fer2013.csv.gz", out="runs-gpu", name=name, epochs=37,
                      early_stopping=37, **{**gpu_members.MEMBERS[name], **extra})
    args = build_parser().parse_args(gpu_members.cli_command(cfg).split()[1:])
    parsed = train_config_from_args(args)  # as `ferkit train` builds it
    assert asdict(parsed) == asdict(cfg)
    assert asdict(replace(parsed, seed=cfg.seed + 1)) != asdict(cfg)  # the comparison sees every field
