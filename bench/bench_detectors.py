"""Face detectors against hand-drawn boxes: recall, precision (IoU >= 0.5) and time per frame.

    python bench/bench_detectors.py [--shared ../shared] [--yunet PATH] [--min-face 20 40] [--repeat 3]

Ground truth: ../shared/data/media/photos/dlib_faces/{training,testing}.xml (9 photos, 43 faces,
most 37-45 pixels wide). Each detector runs once per --min-face value; times are the median
of --repeat passes over the photos.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

from ferkit.config import DetectorConfig, default_shared_dir
from ferkit.inference.images import read_image
from ferkit.vision.detectors import create_detector
from ferkit.vision.scoring import DetectionScore, read_face_boxes

XML_FILES = ("training.xml", "testing.xml")


def load_ground_truth(shared: Path) -> list:
    folder = shared / "data" / "media" / "photos" / "dlib_faces"
    truth = {}
    for name in XML_FILES:
        truth.update(read_face_boxes(folder / name))
    return [(read_image(path), boxes) for path, boxes in sorted(truth.items())]


def score_detector(cfg: DetectorConfig, photos: list, repeat: int, min_iou: float) -> tuple[DetectionScore, float]:
    """(score, median milliseconds per photo)."""
    detector = create_detector(cfg)
    score, times = DetectionScore(), []
    for run in range(repeat):
        started = time.perf_counter()  # the still-image path: YuNet's coarse and fine passes
        results = [detector.detect_faces(image, fine=True).boxes for image, _ in photos]
        times.append((time.perf_counter() - started) / len(photos) * 1000)
    for detected, (_, truth) in zip(results, photos):
        score.add(detected, truth, min_iou)
    return score, statistics.median(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=default_shared_dir())
    parser.add_argument("--yunet", type=Path, help="another YuNet .onnx (default: the bundled one)")
    parser.add_argument("--min-face", type=int, nargs="+", default=[20, DetectorConfig().min_face],
                        help="smallest face side(s) to try, pixels")
    parser.add_argument("--min-iou", type=float, default=0.5)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    if not (args.shared / "data").is_dir():
        print(f"no shared data folder at {args.shared} (pass --shared)", file=sys.stderr)
        return 2
    photos = load_ground_truth(args.shared)
    configs = [DetectorConfig(name="haar"),
               DetectorConfig(name="yunet", detector_model=str(args.yunet) if args.yunet else None)]
    print(f"{len(photos)} photos, {sum(len(b) for _, b in photos)} hand-drawn faces, IoU >= {args.min_iou}")
    print(f"{'detector':<8} {'min face':>8} {'recall':>7} {'precision':>9} {'found':>6} {'detected':>8} "
          f"{'ms/frame':>9}")
    for base in configs:
        for min_face in args.min_face:
            score, ms = score_detector(replace(base, min_face=min_face), photos, args.repeat, args.min_iou)
            print(f"{base.name:<8} {min_face:>8} {score.recall:>7.1%} {score.precision:>9.1%} "
                  f"{score.found:>3}/{score.truth:<2} {score.detected:>8} {ms:>9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
