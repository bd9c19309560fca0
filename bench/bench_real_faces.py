"""Real faces, Haar against YuNet, with and without alignment: detection, accuracy, video speed.

    python bench/bench_real_faces.py [--shared ../shared] [--only dlib,tw,tilt,small,fer,video] [--fer-limit N]
    python bench/bench_real_faces.py --calibrate      # FER2013's landmark template (crops.FER2013_LANDMARKS)
    python bench/bench_real_faces.py --sweep          # the settings the defaults were picked from

One run prints, for each configuration (haar; yunet unaligned; yunet aligned, the default):

- dlib photos (9 PASCAL VOC group photos, 43 hand-drawn faces): recall and precision at IoU 0.5,
  through `Pipeline.analyse` (the still-image path: YuNet's coarse and fine passes);
- tw-faces (1,223 posed photos, 29 people): accuracy of the largest face per image, overall, per
  class and per performance type; an image without a face counts as wrong; and the same photos
  rotated 25 degrees (tilted heads); and the same photos shrunk (area averaging) until the face found
  in the full-size photo is 32 or 24 pixels wide (faces as small as in a crowd or a far camera);
- FER2013 PublicTest through the same detect-and-crop path (each 48x48 face upscaled 4x, with a
  replicated border, as a photo): accuracy against the same faces classified as they are;
- videos, end to end with `process_video` writing the annotated MP4 and the CSV: faces per frame
  and frames per second on the 640x360 clips in ../shared, and on a 1080p crowd-style video made
  here (pan and zoom across a mosaic of the group photos, faces about 25-50 pixels), with recall
  against the mosaic's hand-drawn boxes.

Speed depends on what else runs on the machine: the load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ferkit.config import Config, default_shared_dir
from ferkit.inference.images import read_image
from ferkit.inference.pipeline import Pipeline
from ferkit.labels import CLASS_NAMES, IMAGE_SIZE
from ferkit.video.process import process_video
from ferkit.vision.detectors import bundled_yunet_path
from ferkit.vision.scoring import DetectionScore, greedy_matches, iou_matrix, read_face_boxes

PHOTOS = Path("data/media/photos")
VIDEOS = Path("data/media/videos")
CLIPS = ("WolfgangLanger_Pexels.mp4", "single_face.mp4")  # the 640x360 clips
# multi_face.jpg's five faces, drawn by hand (tests/test_vision.py's GROUP_PHOTO_FACES)
GROUP_PHOTO_FACES = np.array([[683, 294, 107, 129], [531, 305, 100, 132], [314, 239, 96, 123],
                              [214, 66, 92, 108], [433, 215, 86, 105]])
FER_UP, FER_PAD = 4, 64  # a FER2013 face as a photo: 192x192 inside a replicated 64-pixel border
TARGET_FPS_640, TARGET_FPS_1080 = 150.0, 30.0
TILT_DEG = 25.0
SMALL_FACES = (32, 24)  # px: face widths for the shrunk tw-faces photos

CONFIGS = {  # name -> Config changes
    "haar": {"detector": {"name": "haar", "min_face": 40}, "pipeline": {"align": False}},  # the old default
    "yunet": {"detector": {"name": "yunet"}, "pipeline": {"align": False}},
    "yunet+align": {"detector": {"name": "yunet"}, "pipeline": {"align": True}},
    # the same, scoring as if the seven expressions were equally common (`--uniform-prior`)
    "yunet+align+uniform": {"detector": {"name": "yunet"}, "pipeline": {"align": True, "uniform_prior": True}},
}


def load_avg() -> str:
    return f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"


MODEL = Config().model  # --model: every pipeline here classifies with it


def config(changes: dict, base: Config | None = None) -> Config:
    return (base or Config(model=MODEL)).updated(**changes)


# --- photos --------------------------------------------------------------------------------

def dlib_truth(shared: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    folder = shared / PHOTOS / "dlib_faces"
    truth = {}
    for name in ("training.xml", "testing.xml"):
        truth.update(read_face_boxes(folder / name))
    return [(read_image(path), boxes) for path, boxes in sorted(truth.items())]


def score_dlib(pipeline: Pipeline, photos) -> tuple[DetectionScore, float]:
    score, started = DetectionScore(), time.perf_counter()
    for image, truth in photos:
        found = pipeline.detector.detect_faces(image, fine=True)
        score.add(found.boxes, truth)
    return score, (time.perf_counter() - started) / len(photos) * 1000


@dataclass
class Tally:
    right: int = 0
    total: int = 0

    def add(self, ok: bool) -> None:
        self.right += int(ok)
        self.total += 1

    def __str__(self) -> str:
        return f"{self.right / max(1, self.total):6.1%}"


@dataclass
class TwResult:
    overall: Tally = field(default_factory=Tally)
    per_class: dict = field(default_factory=lambda: {name: Tally() for name in CLASS_NAMES})
    per_type: dict = field(default_factory=dict)
    no_face: int = 0


def read_tw(shared: Path) -> list[dict]:
    folder = shared / "data" / "tw-faces"
    with open(folder / "labels.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        row["path"] = folder / row["file"]
    return rows


def score_tw(pipeline: Pipeline, rows: list[dict], images: dict) -> TwResult:
    result = TwResult()
    for row in rows:
        faces = pipeline.analyse(images[row["file"]])
        predicted = faces[0].emotion if faces else None  # largest face first
        result.no_face += int(not faces)
        ok = predicted == row["emotion"]
        result.overall.add(ok)
        result.per_class[row["emotion"]].add(ok)
        result.per_type.setdefault(row["performance"], Tally()).add(ok)
    return result


def largest_face_crops(pipeline: Pipeline, images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The 48x48 crop `pipeline` classifies for each image's largest face (what score_tw scores), and a
    bool mask of the images that had a face: (K, 48, 48) uint8, (N,) with K = mask.sum()."""
    crops, found_mask = [], []
    for image in images:
        found = pipeline.detector.detect_faces(image, fine=True)[:1]  # as Pipeline.analyse: largest first
        found_mask.append(len(found.boxes) > 0)
        if found_mask[-1]:
            crops.append(pipeline.crops(image, found.boxes, found.landmarks)[0])
    empty = np.zeros((0, IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    return (np.stack(crops) if crops else empty), np.array(found_mask, bool)


def tw_faces(shared: Path, changes: dict | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """tw-faces as the pipeline (`changes` to the default Config: yunet+align) sees them: the largest face's
    crop and label for each photo with a face, and the number of photos (a photo with none counts as wrong)."""
    rows = read_tw(shared)
    pipeline = Pipeline.from_config(config(changes or CONFIGS["yunet+align"]))
    crops, found = largest_face_crops(pipeline, [read_image(row["path"]) for row in rows])
    labels = np.array([CLASS_NAMES.index(row["emotion"]) for row in rows])[found]
    return crops, labels, len(rows)


def tilt(image: np.ndarray, degrees: float) -> np.ndarray:
    """The photo rotated about its centre (a tilted head), the corners filled by replication."""
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    return cv2.warpAffine(image, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE)


def shrink_to_face(image: np.ndarray, face_width: int, target: int) -> np.ndarray:
    """The photo scaled so that a face `face_width` pixels wide becomes `target` pixels wide."""
    scale = target / face_width
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def fer_as_photo(face: np.ndarray) -> np.ndarray:
    big = cv2.resize(face, (IMAGE_SIZE * FER_UP,) * 2, interpolation=cv2.INTER_CUBIC)
    return cv2.cvtColor(cv2.copyMakeBorder(big, *(FER_PAD,) * 4, cv2.BORDER_REPLICATE), cv2.COLOR_GRAY2BGR)


def score_fer(pipeline: Pipeline, faces: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(accuracy through detect-and-crop, share of faces detected); undetected faces count as wrong."""
    right = found = 0
    for face, label in zip(faces, labels):
        result = pipeline.analyse(fer_as_photo(face))
        if result:
            found += 1
            right += int(result[0].emotion == CLASS_NAMES[label])
    return right / len(faces), found / len(faces)


def load_fer(shared: Path, split: str, limit: int | None, seed: int = 0):
    from ferkit.data import load_dataset

    data = load_dataset(shared / "data" / "fer2013" / "fer2013.csv.gz").split(split)
    index = np.arange(len(data))
    if limit and limit < len(data):
        index = np.sort(np.random.default_rng(seed).choice(len(data), limit, replace=False))
    return data.images[index], data.hard_labels[index]


# --- videos --------------------------------------------------------------------------------

def crowd_mosaic(shared: Path, rows: int = 3, cols: int = 4, height: int = 375):
    """(canvas, true boxes): the group photos at `height` pixels, tiled cols x rows (each photo
    reused, mirrored every other time), with their hand-drawn face boxes moved along."""
    photos = [(image, boxes) for image, boxes in dlib_truth(shared)]
    photos.append((read_image(shared / PHOTOS / "multi_face.jpg"), GROUP_PHOTO_FACES))
    tiles, truth = [], []
    for i in range(rows * cols):
        image, boxes = photos[i % len(photos)]
        scale = height / image.shape[0]
        image = cv2.resize(image, (round(image.shape[1] * scale), height), interpolation=cv2.INTER_AREA)
        boxes = np.round(boxes * scale).astype(int)
        if (i // len(photos)) % 2:
            image = image[:, ::-1]
            boxes = boxes.copy()
            boxes[:, 0] = image.shape[1] - boxes[:, 0] - boxes[:, 2]
        tiles.append((image, boxes))
    width = max(sum(t[0].shape[1] for t in tiles[r * cols:(r + 1) * cols]) for r in range(rows))
    canvas = np.full((rows * height, width, 3), 90, np.uint8)
    for r in range(rows):
        x = 0
        for image, boxes in tiles[r * cols:(r + 1) * cols]:
            canvas[r * height:(r + 1) * height, x:x + image.shape[1]] = image
            truth.extend((b + [x, r * height, 0, 0]).tolist() for b in boxes)
            x += image.shape[1]
    return canvas, np.asarray(truth, np.float64)


def make_crowd_video(shared: Path, path: Path, frames: int = 240, fps: float = 30.0, size=(1920, 1080)):
    """A 1080p pan and zoom over the mosaic (zoom 0.62-1.1: faces about 25-50 pixels); returns
    the true boxes per frame (fully in view)."""
    canvas, truth = crowd_mosaic(shared)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    per_frame = []
    for i in range(frames):
        t = i / max(1, frames - 1)
        zoom = 0.86 + 0.24 * np.cos(2 * np.pi * t)  # 1.1 -> 0.62 -> 1.1
        view_w, view_h = size[0] / zoom, size[1] / zoom
        x0 = (canvas.shape[1] - view_w) * (0.5 + 0.5 * np.sin(2 * np.pi * t))
        y0 = (canvas.shape[0] - view_h) * (0.5 - 0.5 * np.cos(4 * np.pi * t))
        x0, y0 = max(0.0, x0) if canvas.shape[1] > view_w else (canvas.shape[1] - view_w) / 2, \
            max(0.0, y0) if canvas.shape[0] > view_h else (canvas.shape[0] - view_h) / 2
        matrix = np.array([[zoom, 0, -x0 * zoom], [0, zoom, -y0 * zoom]])
        writer.write(cv2.warpAffine(canvas, matrix, size, flags=cv2.INTER_AREA, borderValue=(90, 90, 90)))
        boxes = truth * zoom - [x0 * zoom, y0 * zoom, 0, 0]
        inside = (boxes[:, 0] >= 0) & (boxes[:, 1] >= 0) & (boxes[:, 0] + boxes[:, 2] <= size[0]) & \
                 (boxes[:, 1] + boxes[:, 3] <= size[1])
        per_frame.append(boxes[inside])
    writer.release()
    return per_frame


def upscaled(video: Path, path: Path, frames: int, size=(1920, 1080)) -> Path:
    """The first `frames` frames of a video resized to 1080p (one large face at 1080p)."""
    capture = cv2.VideoCapture(str(video))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), capture.get(cv2.CAP_PROP_FPS), size)
    for _ in range(frames):
        ok, frame = capture.read()
        if not ok:
            break
        writer.write(cv2.resize(frame, size, interpolation=cv2.INTER_CUBIC))
    writer.release()
    capture.release()
    return path


def run_video(pipeline: Pipeline, video: Path, folder: Path) -> dict:
    """process_video writing the annotated MP4 and the CSV; fps end to end and faces per frame."""
    csv_path = folder / "faces.csv"
    started, cpu = time.perf_counter(), time.process_time()
    summary = process_video(pipeline, video, folder / "annotated.mp4", csv_path)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    boxes: dict[int, list] = {}
    with open(csv_path, newline="") as handle:
        for row in csv.DictReader(handle):
            faces = boxes.setdefault(int(row["frame"]), [])
            if row["face_id"]:
                faces.append([int(row[k]) for k in ("x", "y", "w", "h")])
    frames = summary["frames"]
    return {"frames": frames, "fps": frames / wall, "faces_per_frame": sum(map(len, boxes.values())) / frames,
            "boxes": boxes, "cpu_ms": cpu / frames * 1000}


def crowd_recall(boxes: dict, truth_per_frame: list, min_iou: float = 0.5) -> tuple[float, float]:
    """(recall, precision) of the CSV's boxes against the true boxes in view, over all frames."""
    found = truth = shown = 0
    for index, truth_boxes in enumerate(truth_per_frame):
        shown_boxes = np.asarray(boxes.get(index, []), np.float64).reshape(-1, 4)
        found += len(greedy_matches(iou_matrix(shown_boxes, truth_boxes), min_iou))
        truth += len(truth_boxes)
        shown += len(shown_boxes)
    return found / max(1, truth), found / max(1, shown)


# --- calibration ---------------------------------------------------------------------------

def calibrate(shared: Path, limit: int) -> None:
    """FER2013's landmark template: YuNet's landmarks on a seeded sample of Training faces."""
    faces, _ = load_fer(shared, "Training", limit)
    detector = cv2.FaceDetectorYN.create(str(bundled_yunet_path()), "", (320, 320), 0.7, 0.3)
    points = []
    for face in faces:
        photo = fer_as_photo(face)
        detector.setInputSize((photo.shape[1], photo.shape[0]))
        _, found = detector.detect(photo)
        if found is not None:
            best = found[np.argmax(found[:, 2] * found[:, 3])]
            points.append((best[4:14].reshape(5, 2) - FER_PAD) / FER_UP)
    points = np.stack(points)
    median = np.median(points, axis=0)
    eyes = points[:, 1] - points[:, 0]
    print(f"FER2013 Training sample: {len(points)} of {len(faces)} faces found by YuNet")
    print("median landmarks (48x48 crop; right eye, left eye, nose, right and left mouth corner):")
    print("  " + ", ".join(f"[{x:.2f}, {y:.2f}]" for x, y in median))
    print(f"eye distance median {np.median(np.hypot(*eyes.T)):.2f} px; eye-line angle median "
          f"{np.degrees(np.median(np.arctan2(eyes[:, 1], eyes[:, 0]))):.2f} deg, mean |angle| "
          f"{np.degrees(np.abs(np.arctan2(eyes[:, 1], eyes[:, 0]))).mean():.2f} deg")


def sweep(shared: Path, fer_limit: int, scales=(0.9, 1.0, 1.05, 1.1, 1.15, 1.2, 1.3),
          shifts=(-0.04, 0.0, 0.04), margins=(0.0, 0.05, 0.1, 0.15, 0.2), dlib: bool = True,
          detectors=("haar", "yunet")) -> None:
    """The settings the defaults were picked from. Detection runs once per image and detector;
    each crop setting then crops and classifies those same detections (largest face per image):
    crop scale and vertical shift of the aligned crop, box margin of the unaligned one, on
    tw-faces and a seeded FER2013 Training sample (not PublicTest, which the report scores);
    YuNet's score threshold and minimum face size on the dlib photos."""
    from ferkit.vision.crops import crop_faces, to_gray

    rows = read_tw(shared)
    tw_images = [read_image(row["path"]) for row in rows]
    tw_labels = np.array([CLASS_NAMES.index(row["emotion"]) for row in rows])
    fer_faces, fer_labels = load_fer(shared, "Training", fer_limit, seed=1)
    fer_images = [fer_as_photo(face) for face in fer_faces]
    print(f"sweep: tw-faces {len(rows)} images; FER2013 Training sample {len(fer_faces)} faces; {load_avg()}")
    for detector in detectors:
        pipeline = Pipeline.from_config(config({"detector": {"name": detector}}))
        sets = []
        for images, labels in ((tw_images, tw_labels), (fer_images, fer_labels)):
            found = [pipeline.detector.detect_faces(image, fine=True)[:1] for image in images]
            sets.append((images, labels, found))

        def accuracy(images, labels, found, **crop) -> float:
            hit = [i for i, f in enumerate(found) if len(f)]
            crops = np.concatenate([crop_faces(to_gray(images[i]), found[i].boxes, landmarks=found[i].landmarks, **crop)
                                    for i in hit]) if hit else np.zeros((0, IMAGE_SIZE, IMAGE_SIZE), np.uint8)
            predicted = pipeline.classifier.predict_proba(crops).argmax(axis=1)
            return float((predicted == labels[hit]).sum() / len(labels))

        def show(label: str, **crop) -> None:
            print(f"  {detector:<6} {label:<34} tw-faces {accuracy(*sets[0], **crop):6.1%}   "
                  f"FER2013 sample {accuracy(*sets[1], **crop):6.1%}")

        for margin in margins:
            show(f"box crop, margin {margin:.2f}", align=False, margin=margin)
        if detector == "yunet":
            for scale in scales:
                for shift in shifts:
                    show(f"aligned, scale {scale:.2f}, shift {shift:+.2f}", align=True, scale=scale, shift_y=shift)
    photos = dlib_truth(shared) if dlib else []
    for threshold in (0.5, 0.6, 0.7, 0.8, 0.9) if dlib else ():
        for min_face in (16, 20, 30, 40):
            pipeline = Pipeline.from_config(config({"detector": {"detect_threshold": threshold, "min_face": min_face}}))
            score, ms = score_dlib(pipeline, photos)
            print(f"  yunet threshold {threshold:.1f} min_face {min_face}: dlib recall {score.recall:6.1%} "
                  f"precision {score.precision:6.1%} ({score.found}/{score.truth}, {score.detected} boxes) {ms:.0f} ms")


# --- main ----------------------------------------------------------------------------------

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=default_shared_dir())
    parser.add_argument("--model", default=Config().model, help="bundled model name or model folder to classify with")
    parser.add_argument("--only", default="dlib,tw,tilt,small,fer,video",
                        help="comma-separated: dlib, tw, tilt (tw-faces rotated), small (tw-faces shrunk), fer, video")
    parser.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated of {', '.join(CONFIGS)}")
    parser.add_argument("--fer-limit", type=int, default=None, help="score a seeded sample of PublicTest")
    parser.add_argument("--crowd-frames", type=int, default=240)
    parser.add_argument("--calibrate", action="store_true", help="measure FER2013's landmark template")
    parser.add_argument("--calibrate-limit", type=int, default=4000)
    parser.add_argument("--sweep", action="store_true", help="the settings sweep behind the defaults")
    parser.add_argument("--sweep-fer-limit", type=int, default=1500)
    parser.add_argument("--sweep-scales", type=float, nargs="+", default=[0.9, 1.0, 1.05, 1.1, 1.15, 1.2, 1.3])
    parser.add_argument("--sweep-shifts", type=float, nargs="+", default=[-0.04, 0.0, 0.04])
    parser.add_argument("--sweep-margins", type=float, nargs="+", default=[0.0, 0.05, 0.1, 0.15, 0.2])
    parser.add_argument("--sweep-detectors", default="haar,yunet")
    parser.add_argument("--sweep-no-dlib", action="store_true")
    args = parser.parse_args(argv)
    global MODEL
    MODEL = args.model
    if not (args.shared / "data").is_dir():
        print(f"no shared data at {args.shared} (pass --shared)", file=sys.stderr)
        return 2
    cv2.setNumThreads(max(1, os.cpu_count() or 1))
    if args.calibrate:
        calibrate(args.shared, args.calibrate_limit)
        return 0
    if args.sweep:
        sweep(args.shared, args.sweep_fer_limit, args.sweep_scales, args.sweep_shifts, args.sweep_margins,
              not args.sweep_no_dlib, args.sweep_detectors.split(","))
        return 0
    parts, names = set(args.only.split(",")), args.configs.split(",")
    pipelines = {name: Pipeline.from_config(config(CONFIGS[name])) for name in names}
    print(f"bench_real_faces: {load_avg()}; model {next(iter(pipelines.values())).classifier.path}")

    if "dlib" in parts:
        photos = dlib_truth(args.shared)
        print(f"\n== dlib photos: {len(photos)} photos, {sum(len(b) for _, b in photos)} hand-drawn faces, IoU >= 0.5"
              " (alignment does not change detection)")
        for name in names:
            if name.endswith("+align"):
                continue
            for min_face in (20, 40):
                pipeline = Pipeline.from_config(config({**CONFIGS[name], "detector": {
                    **CONFIGS[name]["detector"], "min_face": min_face}}))
                score, ms = score_dlib(pipeline, photos)
                print(f"  {name:<12} min_face {min_face}: recall {score.recall:6.1%}  precision {score.precision:6.1%}  "
                      f"({score.found}/{score.truth} found, {score.detected} boxes)  {ms:5.1f} ms per photo")

    if "tw" in parts:
        rows = read_tw(args.shared)
        images = {row["file"]: read_image(row["path"]) for row in rows}
        results = {name: score_tw(pipelines[name], rows, images) for name in names}
        types = sorted({row["performance"] for row in rows})
        print(f"\n== tw-faces: {len(rows)} posed photos, largest face per image (no face counts as wrong)")
        w = max(12, *map(len, names))  # the names column, as wide as the longest config's name
        print(f"  {'':<{w}} {'overall':>7} {'no face':>7} " + " ".join(f"{c[:7]:>7}" for c in CLASS_NAMES)
              + " | " + " ".join(f"{t[:8]:>8}" for t in types))
        for name, result in results.items():
            print(f"  {name:<{w}} {str(result.overall):>7} {result.no_face:>7} "
                  + " ".join(f"{str(result.per_class[c]):>7}" for c in CLASS_NAMES) + " | "
                  + " ".join(f"{str(result.per_type[t]):>8}" for t in types))
        print(f"  {'(images)':<{w}} {len(rows):>7} {'':>7} " + " ".join(f"{results[names[0]].per_class[c].total:>7}"
              for c in CLASS_NAMES) + " | " + " ".join(f"{results[names[0]].per_type[t].total:>8}" for t in types))

    if "tilt" in parts:
        rows = read_tw(args.shared)
        images = {row["file"]: tilt(read_image(row["path"]), TILT_DEG * (1 if i % 2 else -1))
                  for i, row in enumerate(rows)}
        print(f"\n== tw-faces tilted: each photo rotated by {TILT_DEG:.0f} degrees (alternately left and right)")
        for name in names:
            result = score_tw(pipelines[name], rows, images)
            print(f"  {name:<12} accuracy {result.overall}  no face {result.no_face}")

    if "small" in parts:
        rows = read_tw(args.shared)
        originals = {row["file"]: read_image(row["path"]) for row in rows}
        print("\n== tw-faces small: each photo shrunk until its face (as found at full size) is this many pixels wide")
        for name in names:
            widths = {}
            for row in rows:
                found = pipelines[name].analyse(originals[row["file"]])
                widths[row["file"]] = found[0].box[2] if found else None
            kept = [row for row in rows if widths[row["file"]]]  # a photo with no face at full size is left out
            for target in SMALL_FACES:
                images = {row["file"]: shrink_to_face(originals[row["file"]], widths[row["file"]], target) for row in kept}
                result = score_tw(pipelines[name], kept, images)
                print(f"  {name:<12} {target} px: accuracy {result.overall}  no face {result.no_face}"
                      f"  ({len(rows) - len(kept)} photos with no face at full size left out)")

    if "fer" in parts:
        faces, labels = load_fer(args.shared, "PublicTest", args.fer_limit)
        direct = (pipelines[names[0]].classifier.predict(faces) == np.asarray(CLASS_NAMES)[labels]).mean()
        print(f"\n== FER2013 PublicTest ({len(faces)} faces), each upscaled {FER_UP}x as a photo and run through "
              f"detect-and-crop; the same faces as they are: {direct:.2%}")
        for name in names:
            accuracy, found = score_fer(pipelines[name], faces, labels)
            print(f"  {name:<12} accuracy {accuracy:6.2%}  faces found {found:6.1%}")

    if "video" in parts:
        print(f"\n== videos, end to end (process_video writing the annotated MP4 and the CSV); {load_avg()}")
        with tempfile.TemporaryDirectory() as folder:
            folder = Path(folder)
            crowd = folder / "crowd_1080p.mp4"
            truth = make_crowd_video(args.shared, crowd, args.crowd_frames)
            print(f"  crowd_1080p.mp4: {len(truth)} frames 1920x1080 made here, "
                  f"{statistics.mean(map(len, truth)):.1f} true faces in view per frame "
                  f"(at most {Config().pipeline.max_faces} are shown: max_faces)")
            single = upscaled(args.shared / VIDEOS / CLIPS[0], folder / "pexels_1080p.mp4", args.crowd_frames)
            print(f"  pexels_1080p.mp4: the first {args.crowd_frames} frames of {CLIPS[0]} upscaled to 1920x1080")
            videos = [args.shared / VIDEOS / clip for clip in CLIPS] + [single, crowd]
            for video in videos:
                for name in names:
                    result = run_video(pipelines[name], video, folder)
                    target = TARGET_FPS_1080 if video in (crowd, single) else TARGET_FPS_640
                    extra = ""
                    if video == crowd:
                        recall, precision = crowd_recall(result["boxes"], truth)
                        extra = f"  recall {recall:6.1%} precision {precision:6.1%}"
                    print(f"  {video.name:<28} {name:<12} {result['faces_per_frame']:5.2f} faces/frame  "
                          f"{result['fps']:6.1f} fps (target {target:.0f}), CPU {result['cpu_ms']:5.1f} ms/frame"
                          f"{extra}  [{load_avg()}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
