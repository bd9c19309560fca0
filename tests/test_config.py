"""The detector and pipeline sections of Config refuse values that would give wrong results silently
(or fail later with an error naming no field), with the same ranges as the CLI's flags."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ferkit.config import (DETECTOR_ALLOWED, PIPELINE_ALLOWED, Config, DetectorConfig, PipelineConfig,
                           ServeConfig)


# section, field, value, error, the allowed values as the message states them
@pytest.mark.parametrize("section, field, value, error, allowed", [
    # the audit's values (s33 H5, M4), and more just past each range's edge
    (PipelineConfig, "smoothing", 2.0, ValueError, "a number in (0, 1]"),
    (DetectorConfig, "nms_threshold", 5.0, ValueError, "a number in [0, 1]"),
    (PipelineConfig, "max_faces", -1, ValueError, "a whole number >= 1"),
    (PipelineConfig, "max_faces", 0, ValueError, "a whole number >= 1"),
    (DetectorConfig, "max_side", -640, ValueError, "a whole number >= 1"),
    (DetectorConfig, "max_side", 0, ValueError, "a whole number >= 1"),
    (DetectorConfig, "detect_threshold", 2.0, ValueError, "a number in [0, 1]"),
    (DetectorConfig, "detect_threshold", -1.0, ValueError, "a number in [0, 1]"),
    (DetectorConfig, "scale_factor", 1.0, ValueError, "a number in (1, inf)"),
    (DetectorConfig, "scale_factor", 0.5, ValueError, "a number in (1, inf)"),
    (DetectorConfig, "min_face", "20", TypeError, "a whole number in [1, 65535]"),
    (DetectorConfig, "min_face", 0, ValueError, "a whole number in [1, 65535]"),
    (DetectorConfig, "min_face", -5, ValueError, "a whole number in [1, 65535]"),
    (DetectorConfig, "min_face", 20.0, TypeError, "a whole number in [1, 65535]"),
    (DetectorConfig, "min_neighbors", -1, ValueError, "a whole number in [0, 10000]"),
    (DetectorConfig, "fine_max_side", 0, ValueError, "a whole number >= 1"),
    (PipelineConfig, "detect_every", 0, ValueError, "a whole number >= 1"),
    (PipelineConfig, "detect_every", -3, ValueError, "a whole number >= 1"),
    (PipelineConfig, "full_scan_every", 0, ValueError, "a whole number >= 1"),
    (PipelineConfig, "fine_scan_every", 0, ValueError, "a whole number >= 1"),
    (PipelineConfig, "crop_margin", -1.0, ValueError, "a number in [0, inf)"),
    (PipelineConfig, "crop_scale", 0.0, ValueError, "a number in (0, inf)"),
    (PipelineConfig, "crop_scale", -1.0, ValueError, "a number in (0, inf)"),
    (PipelineConfig, "crop_shift", 0.6, ValueError, "a number in [-0.5, 0.5]"),
    (PipelineConfig, "smoothing", -1.0, ValueError, "a number in (0, 1]"),
    (PipelineConfig, "smoothing", 0.0, ValueError, "a number in (0, 1]"),
    (PipelineConfig, "smoothing", math.nan, ValueError, "a number in (0, 1]"),
    (PipelineConfig, "classify_per_frame", 0, ValueError, "a whole number >= 1"),
    (PipelineConfig, "track_iou", 0.0, ValueError, "a number in (0, 1]"),
    (PipelineConfig, "track_max_missed", -1, ValueError, "a whole number >= 0"),
    (PipelineConfig, "track_min_hits", 0, ValueError, "a whole number >= 1"),
    (PipelineConfig, "classifier_threads", -1, ValueError, "a whole number >= 0"),
    (PipelineConfig, "classifier_threads", "2", TypeError, "a whole number >= 0"),
    (PipelineConfig, "max_faces", True, TypeError, "a whole number >= 1"),
    (PipelineConfig, "tta", 1, TypeError, "True or False"),
    (PipelineConfig, "align", "no", TypeError, "True or False"),
    (PipelineConfig, "smoothing", None, TypeError, "a number in (0, 1]"),
])
def test_a_field_out_of_range_is_refused_when_built_naming_field_range_and_value(section, field, value, error,
                                                                                 allowed):
    message = f"{section.__name__}.{field} must be {allowed}, got {value!r} ({type(value).__name__})"
    assert "\n" not in message
    with pytest.raises(error) as caught:
        section(**{field: value})
    assert str(caught.value) == message
    with pytest.raises(error) as caught:  # through Config and its copies too
        Config().updated(**{"detector" if section is DetectorConfig else "pipeline": {field: value}})
    assert str(caught.value) == message


def test_every_default_and_every_range_edge_is_accepted():
    DetectorConfig(), PipelineConfig(), Config()
    DetectorConfig(min_face=1, scale_factor=1.01, min_neighbors=0, detect_threshold=0, nms_threshold=1, max_side=1,
                   fine_max_side=1)
    DetectorConfig(detect_threshold=1.0, nms_threshold=0.0)
    PipelineConfig(detect_every=1, full_scan_every=1, fine_scan_every=1, crop_margin=0, crop_scale=1e-3,
                   crop_shift=-0.5, max_faces=1, classify_per_frame=1, smoothing=1, track_iou=1, track_max_missed=0,
                   track_min_hits=1, classifier_threads=0, align=False, tta=True)
    # numpy numbers are numbers
    assert PipelineConfig(max_faces=np.int64(3), smoothing=np.float32(0.5)).max_faces == 3
    assert set(DETECTOR_ALLOWED) | {"name", "detector_model"} == set(DetectorConfig.__dataclass_fields__)
    assert set(PIPELINE_ALLOWED) == set(PipelineConfig.__dataclass_fields__), "every field has its range"


# flag, section, field, values the CLI takes, values it refuses: the config must agree on each
CLI_RANGES = [
    ("--min-face", DetectorConfig, "min_face", ["1", "400", "65535"], ["0", "-5", "65536"]),
    ("--detect-threshold", DetectorConfig, "detect_threshold", ["0", "0.5", "1"], ["-0.01", "1.01", "nan", "inf"]),
    ("--min-neighbors", DetectorConfig, "min_neighbors", ["0", "7", "10000"], ["-1", "10001"]),
    ("--detect-every", PipelineConfig, "detect_every", ["1", "30"], ["0", "-3"]),
    ("--smoothing", PipelineConfig, "smoothing", ["1", "0.001", "0.5"], ["0", "-1", "1.5", "nan"]),
]


@pytest.mark.parametrize("flag, section, field, taken, refused", CLI_RANGES, ids=[row[0] for row in CLI_RANGES])
def test_the_ranges_agree_with_the_cli_flags(flag, section, field, taken, refused, capsys):
    from ferkit.cli import build_parser

    command = ["video", "a.mp4"] if section is PipelineConfig else ["predict", "a.jpg"]
    extra = ["--detector", "haar"] if field == "min_neighbors" else []
    for text in taken:
        args = build_parser().parse_args(command + extra + [flag, text])
        assert getattr(section(**{field: getattr(args, field)}), field) == getattr(args, field)
    for text in refused:
        with pytest.raises(SystemExit):
            build_parser().parse_args(command + extra + [flag, text])
        value = float(text) if field in ("detect_threshold", "smoothing") else int(text)
        with pytest.raises(ValueError, match=f"^{section.__name__}.{field} must be "):
            section(**{field: value})
    capsys.readouterr()


def test_a_detector_name_stands_for_its_detector_config():
    assert Config(detector="haar").detector == DetectorConfig(name="haar")
    assert Config().updated(detector="haar").detector == DetectorConfig(name="haar")
    with pytest.raises(TypeError) as caught:
        Config(detector=3)
    assert str(caught.value) == ("Config.detector must be a DetectorConfig or a detector name ('yunet' or 'haar'), "
                                 "got int")
    with pytest.raises(TypeError) as caught:
        Config(pipeline={"smoothing": 0.5})
    assert str(caught.value) == "Config.pipeline must be a PipelineConfig, got dict"


def test_from_config_checks_fields_set_after_the_config_was_built():
    from ferkit.inference.pipeline import Pipeline

    config = Config()
    config.pipeline.smoothing = 2.0  # as cli.py sets detect_every and smoothing on a built PipelineConfig
    with pytest.raises(ValueError) as caught:
        Pipeline.from_config(config)  # before any model is loaded
    assert str(caught.value) == "PipelineConfig.smoothing must be a number in (0, 1], got 2.0 (float)"
    config = Config()
    config.detector = "haar"
    with pytest.raises(TypeError, match="^Config.detector must be a DetectorConfig"):
        Pipeline.from_config(config)


def test_the_serve_section_is_not_checked():
    """Tests build ServeConfig with small values on purpose; its ranges are the CLI's alone."""
    assert ServeConfig(threads=0, job_ttl=1, max_inflight=0).threads == 0
