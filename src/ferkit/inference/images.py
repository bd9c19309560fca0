"""Still images: decode, find and classify every face, write annotated copies (`ferkit predict`).

`read_image` and `predict_image` are shared with the web app's upload and API routes.
"""

from __future__ import annotations

import io
import json
import sys
import warnings
from pathlib import Path

import cv2
import numpy as np

from .. import MAX_IMAGE_PIXELS
from ..config import Config
from ..errors import MediaError
from ..files import atomic_output, check_output_folder, printable, require_file
from ..vision.draw import draw_faces
from .pipeline import Face, Pipeline


def read_image(source: str | Path | bytes) -> np.ndarray:
    """A BGR uint8 image from a file path or the bytes of an image file (EXIF rotation applied).

    Raises MediaError for a missing, empty, corrupt or unsupported file.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        name, data = "image", np.frombuffer(source, np.uint8)
    else:
        name, data = str(source), read_bytes(Path(source))
    if data.size == 0:
        raise MediaError(f"{name}: the file is empty")
    refuse_too_many_pixels(name, data)
    try:
        image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    except cv2.error:  # e.g. more pixels than OpenCV's decoding limit
        image = None
    if image is None:
        raise MediaError(f"{name}: not an image OpenCV can read (corrupt, unsupported, or too many pixels)")
    return image


def refuse_too_many_pixels(name: str, data: np.ndarray) -> None:
    """MediaError where the file's header declares more than MAX_IMAGE_PIXELS, before anything is decoded.

    OpenCV's own cap (OPENCV_IO_MAX_IMAGE_PIXELS, set when ferkit is imported) is read once, when cv2 loads,
    so a program that imported cv2 first would decode a gigapixel bomb; this check holds either way. A format
    Pillow does not know, or a corrupt header, is left to OpenCV."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            # only the size is read, from the first MiB: a TIFF cut there makes Pillow warn of "corrupt EXIF data"
            # (its directory lies further on), and its bomb warning is ours to give. Narrow filters: the filter list
            # is the process's, and threads (web requests) that overlap here may leave one of them behind
            warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
            warnings.filterwarnings("ignore", message="Corrupt EXIF data", category=UserWarning)
            # the first MiB holds the header (JPEG's size follows its EXIF block, at most 64 KiB)
            with Image.open(io.BytesIO(data[:1 << 20].tobytes())) as header:
                width, height = header.size
    except Image.DecompressionBombError:  # Pillow's own limit, far above ours
        width, height = None, None
    except Exception:  # noqa: BLE001 - unknown or corrupt to Pillow: OpenCV decides
        return
    if width is None or width * height > MAX_IMAGE_PIXELS:
        declared = f"{width} x {height}; " if width is not None else ""
        raise MediaError(f"{name}: too many pixels ({declared}at most {MAX_IMAGE_PIXELS:,} are decoded)")


def read_bytes(path: Path) -> np.ndarray:
    require_file(path)
    try:
        return np.fromfile(path, np.uint8)  # np.fromfile + imdecode, unlike imread, handles any path name
    except OSError as exc:
        raise MediaError(f"{path}: cannot be read ({exc.strerror})") from None


def faces_report(faces: list[Face]) -> dict:
    """The JSON form of one image's faces: {"faces": [{"box", "emotion", "scores"}, ...]}."""
    return {"faces": [face.to_dict() for face in faces]}


def predict_image(pipeline: Pipeline, image: np.ndarray) -> dict:
    """Every face of a decoded image, largest first; an image without faces gives an empty list.
    `image`: uint8 grayscale, BGR or BGRA, as Pipeline.analyse takes it (read_image gives BGR)."""
    return faces_report(pipeline.analyse(image))


# Formats an annotated (colour) copy keeps; others (PBM/PGM hold no colour, or OpenCV cannot write
# them) become PNG.
COLOUR_FORMATS = (".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".dib", ".webp", ".tif", ".tiff", ".ppm", ".jp2")


def annotated_name(path: Path, taken: set[str]) -> str:
    """The input's file name (PNG when its format holds no colour or OpenCV cannot write it), made
    unique within one run."""
    # OpenCV picks the writer by extension only; never the name itself: a name that is not valid
    # UTF-8 (a surrogate-escaped str) crashes haveImageWriter (segfault)
    keep = path.suffix.lower() in COLOUR_FORMATS and cv2.haveImageWriter("image" + path.suffix.lower())
    name = path.name if keep else path.stem + ".png"
    stem, suffix, n = Path(name).stem, Path(name).suffix, 1
    while name in taken:
        n += 1
        name = f"{stem}-{n}{suffix}"
    taken.add(name)
    return name


def write_image(image: np.ndarray, target: Path) -> None:
    """Encode and write `target` whole, or leave nothing behind."""
    write_encoded(encode_image(image, target), target)


def encode_image(image: np.ndarray, target: Path) -> bytes:
    """`image` encoded in the format of `target`'s extension; MediaError when OpenCV cannot."""
    try:
        ok, encoded = cv2.imencode(target.suffix, image)
    except cv2.error:  # no encoder for the extension, or the image does not fit the format
        ok = False
    if not ok:
        raise MediaError(f"{target}: OpenCV cannot encode this image format")
    return encoded.tobytes()


def write_encoded(encoded: bytes, target: Path) -> None:
    with atomic_output(target) as partial:
        partial.write_bytes(encoded)


def prepare_out_dir(out_dir: str | Path) -> Path:
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MediaError(f"{out}: cannot create the output folder ({exc.strerror})") from None
    return out


def run_predict(paths, config: Config, as_json: bool = False, out_dir: str | Path | None = None) -> int:
    """`ferkit predict`: print each image's faces (text, or one JSON object); annotated copies in out_dir.

    An image that cannot be read is one error line on stderr (in `--json` also an entry of "errors", a key
    present only then) and the others still run: 2 if any image failed, else 0. Problems that are not one
    image's (the model, the --out folder, a copy that cannot be written) raise a FerkitError as before.
    """
    paths = [Path(p) for p in paths]
    # checked before loading the model: with no image left, neither the model nor --out is touched
    problems = [image_file_problem(path) for path in paths]
    found = [path for path, problem in zip(paths, problems) if problem is None]
    taken: set[str] = set()  # a copy's name depends on the command line only, not on which images fail
    targets = [Path(out_dir) / annotated_name(path, taken) if out_dir and problem is None else None
               for path, problem in zip(paths, problems)]
    refuse_overwriting_inputs(found, targets)
    if out_dir and found:
        check_output_folder(out_dir)  # an unusable --out is said before the model loads
    pipeline = Pipeline.from_config(config) if found else None
    out = prepare_out_dir(out_dir) if out_dir and found else None  # after the model: a bad one leaves no folder
    results, errors = [], []
    for path, problem, target in zip(paths, problems, targets):
        if problem is None:
            try:
                image = read_image(path)
                faces = pipeline.analyse(image)
                encoded = encode_image(draw_faces(image, faces), target) if out else None
            except MediaError as exc:  # this image only; the next one may be fine
                problem = exc
        if problem is not None:
            errors.append(report_bad_image(path, problem))
            continue
        if out:
            write_encoded(encoded, target)  # a folder that refuses files refuses every copy: stops the run
        results.append({"path": printable(path), **faces_report(faces)})
        if not as_json:
            print_faces(path, faces)
    if as_json:
        print(json.dumps({"images": results, **({"errors": errors} if errors else {})}))
    return 2 if errors else 0


def image_file_problem(path: Path) -> MediaError | None:
    """Why `path` cannot be a photo at all (missing, a folder, not a regular file), or None."""
    if path.is_dir():
        return MediaError(f"{path}: is a folder; use `ferkit batch` for folders")
    try:
        require_file(path)
    except MediaError as exc:
        return exc
    return None


def report_bad_image(path: Path, problem: MediaError) -> dict:
    """One error line on stderr, as cli.main prints a FerkitError, and the image's entry of "errors"."""
    message = printable(str(problem))
    sys.stdout.flush()  # the lines of the images before it come first
    print(f"ferkit predict: error: {message}", file=sys.stderr, flush=True)
    return {"path": printable(path), "error": message}


def refuse_overwriting_inputs(paths: list[Path], targets: list[Path | None]) -> None:
    """MediaError, before any work, when an annotated copy would replace an input photo (`--out` is
    the photo's own folder); by file identity, so links and other spellings of the path count too."""
    inputs = {file_id(path) for path in paths} - {None}
    for target in targets:
        if target is not None and file_id(target) in inputs:
            raise MediaError(f"{target}: an output may not overwrite an input photo (choose another --out folder)")


def file_id(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()
    except (OSError, ValueError):  # missing (a new output), or a name the OS refuses
        return None
    return info.st_dev, info.st_ino


def print_faces(path: Path, faces: list[Face]) -> None:
    print(f"{printable(path)}: {len(faces)} face{'s' if len(faces) != 1 else ''}")
    for face in faces:
        top = sorted(face.to_dict()["scores"].items(), key=lambda item: -item[1])[:3]
        print(f"  box {list(face.box)}: {face.emotion} ({', '.join(f'{k} {v:.0%}' for k, v in top)})")
    sys.stdout.flush()
