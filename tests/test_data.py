"""Loaders (CSV, .gz, image folders, FER+ votes), their error messages, augmentation, batches."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ferkit.data import FaceDataset, class_weights, default_splits, load_dataset, load_fer2013_csv, load_image_folders
from ferkit.data.augment import Augmentation
from ferkit.data.ferplus import VOTE_COLUMNS
from ferkit.errors import DataError
from ferkit.labels import CLASS_NAMES, NUM_CLASSES


# --- FER2013 CSV ---------------------------------------------------------------------------------

def test_plain_and_gzipped_csv_give_identical_arrays(tiny_csv):
    plain = load_fer2013_csv(tiny_csv(gz=False))
    gzipped = load_fer2013_csv(tiny_csv(gz=True))
    assert plain.images.shape == (28, 48, 48) and plain.images.dtype == np.uint8
    np.testing.assert_array_equal(plain.images, gzipped.images)
    np.testing.assert_array_equal(plain.labels, gzipped.labels)
    np.testing.assert_array_equal(plain.usage, gzipped.usage)


@pytest.mark.parametrize("gz", [False, True])
def test_a_csv_with_a_byte_order_mark_reads_as_without(tiny_csv, tmp_path, gz):
    """Excel's "CSV UTF-8" starts with a BOM, which would stick to the first column's name."""
    import gzip

    plain = tiny_csv(gz=gz)
    opener = gzip.open if gz else open
    with opener(plain, "rb") as handle:
        data = handle.read()
    marked = tmp_path / plain.name
    with opener(marked, "wb") as handle:
        handle.write(b"\xef\xbb\xbf" + data)
    a, b = load_fer2013_csv(plain), load_fer2013_csv(marked)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.splits == b.splits


def test_csv_pixels_and_labels_match_the_file(tmp_path):
    face = np.arange(48 * 48) % 256
    path = tmp_path / "one.csv"
    path.write_text(f"emotion,pixels,Usage\n5,{' '.join(map(str, face))},PublicTest\n")
    dataset = load_fer2013_csv(path)
    np.testing.assert_array_equal(dataset.images[0], face.reshape(48, 48))
    assert dataset.labels.tolist() == [5] and dataset.usage.tolist() == ["PublicTest"]


def test_split_selection(tiny_csv):
    path = tiny_csv(rows_per_split=10, splits=("Training", "PublicTest", "PrivateTest"))
    everything = load_dataset(path)
    assert everything.splits == ["Training", "PublicTest", "PrivateTest"]
    private = load_dataset(path, splits=("PrivateTest",))
    assert len(private) == 10 and set(private.usage) == {"PrivateTest"}
    np.testing.assert_array_equal(private.images, everything.split("PrivateTest").images)
    assert len(everything.split("Training", "PublicTest")) == 20


def test_csv_without_usage_column_is_one_training_split(tmp_path):
    path = tmp_path / "no_usage.csv"
    path.write_text("emotion,pixels\n" + "".join(f"{i},{' '.join(['7'] * 2304)}\n" for i in range(3)))
    dataset = load_fer2013_csv(path)
    assert dataset.splits == ["Training"] and dataset.labels.tolist() == [0, 1, 2]


def replace_line(path, line_no: int, make_line) -> None:
    """Rewrite line `line_no` (1-based, as in error messages) of a CSV with make_line(old_fields)."""
    lines = path.read_text().splitlines()
    lines[line_no - 1] = make_line(lines[line_no - 1].split(","))
    path.write_text("\n".join(lines) + "\n")


def pixels_with(fields, first_values: str) -> str:
    """A row whose pixel list starts with `first_values` (replacing as many values)."""
    values = fields[1].split(" ")
    new = first_values.split(" ")
    return ",".join([fields[0], " ".join(new + values[len(new):]), fields[2]])


BAD_ROWS = {
    "too few pixels": (lambda f: ",".join([f[0], " ".join(f[1].split(" ")[:-1]), f[2]]), "2304 integers"),
    "too many pixels": (lambda f: ",".join([f[0], f[1] + " 1", f[2]]), "2304 integers"),
    "non-numeric pixel": (lambda f: pixels_with(f, "12 abc"), "2304 integers"),
    "pixel value 300": (lambda f: pixels_with(f, "300"), "0..255"),
    "negative pixel": (lambda f: pixels_with(f, "-1"), "0..255"),
    "unknown label 9": (lambda f: ",".join(["9", f[1], f[2]]), "unknown emotion label '9'"),
    "non-numeric label": (lambda f: ",".join(["happy", f[1], f[2]]), "unknown emotion label 'happy'"),
    "missing field": (lambda f: ",".join(f[:2]), "expected 3 fields"),
}


@pytest.mark.parametrize("problem", BAD_ROWS)
def test_bad_row_error_names_file_and_line(tiny_csv, problem):
    path = tiny_csv(rows_per_split=3)
    make_line, detail = BAD_ROWS[problem]
    replace_line(path, 4, make_line)
    with pytest.raises(DataError) as error:
        load_fer2013_csv(path)
    message = str(error.value)
    assert str(path) in message and "line 4" in message and detail in message


def test_missing_column_names_file_and_line_1(tmp_path):
    path = tmp_path / "bad_header.csv"
    path.write_text("label,pixels,Usage\n0,1 2 3,Training\n")
    with pytest.raises(DataError, match="line 1: missing column") as error:
        load_fer2013_csv(path)
    assert str(path) in str(error.value) and "emotion" in str(error.value)


def test_missing_file(tmp_path):
    path = tmp_path / "absent.csv"
    with pytest.raises(DataError, match="no such file") as error:
        load_dataset(path)
    assert str(path) in str(error.value)


@pytest.mark.parametrize("content", ["", "emotion,pixels,Usage\n"], ids=["empty file", "header only"])
def test_empty_file(tmp_path, content):
    path = tmp_path / "empty.csv"
    path.write_text(content)
    with pytest.raises(DataError, match="empty|no rows") as error:
        load_fer2013_csv(path)
    assert str(path) in str(error.value)


def test_corrupt_gzip_is_a_data_error(tmp_path):
    path = tmp_path / "broken.csv.gz"
    path.write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="cannot read") as error:
        load_fer2013_csv(path)
    assert str(path) in str(error.value)


def test_absent_split_names_file_and_present_splits(tiny_csv):
    path = tiny_csv(rows_per_split=2)
    with pytest.raises(DataError, match="no rows in split PrivateTest") as error:
        load_fer2013_csv(path, splits=("PrivateTest",))
    assert str(path) in str(error.value)
    with pytest.raises(DataError, match="split PrivateTest is empty or absent") as error:
        load_dataset(path).split("PrivateTest")
    assert str(path) in str(error.value) and "Training, PublicTest" in str(error.value)


# --- image folders -------------------------------------------------------------------------------

def write_image(path, image) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)


def test_image_folders_give_48x48_gray_uint8(tmp_path):
    root = tmp_path / "faces"
    write_image(root / "train" / "happy" / "gray.png", np.full((48, 48), 100, np.uint8))
    write_image(root / "train" / "happy" / "color_big.jpg", np.full((120, 90, 3), (50, 100, 150), np.uint8))
    write_image(root / "train" / "sad" / "rgba_small.png", np.full((30, 20, 4), (10, 200, 30, 128), np.uint8))
    write_image(root / "test" / "Angry" / "face.png", np.zeros((64, 64), np.uint8))
    (root / "train" / "sad" / "notes.txt").write_text("not an image: skipped")

    dataset = load_image_folders(root)
    assert dataset.images.shape == (4, 48, 48) and dataset.images.dtype == np.uint8
    assert sorted(zip(dataset.usage, (CLASS_NAMES[i] for i in dataset.labels))) == [
        ("test", "angry"), ("train", "happy"), ("train", "happy"), ("train", "sad")]
    # sorted splits; within one, the classes interleaved (happy's first, sad's first, happy's second)
    by_name = dict(zip(["face", "color_big", "rgba_small", "gray"], dataset.images))
    assert (by_name["gray"] == 100).all()
    # colour and alpha are converted with OpenCV's own luminance weights
    assert abs(int(by_name["color_big"][24, 24]) - int(cv2.cvtColor(np.uint8([[[50, 100, 150]]]), cv2.COLOR_BGR2GRAY)[0, 0])) <= 2
    assert by_name["rgba_small"][24, 24] == cv2.cvtColor(np.uint8([[[10, 200, 30]]]), cv2.COLOR_BGR2GRAY)[0, 0]


def test_image_folder_split_selection_and_errors(tmp_path):
    root = tmp_path / "faces"
    write_image(root / "train" / "fear" / "a.png", np.zeros((48, 48), np.uint8))
    write_image(root / "val" / "fear" / "b.png", np.zeros((48, 48), np.uint8))
    assert load_dataset(root, splits=("val",)).splits == ["val"]
    with pytest.raises(DataError, match="no images found for split test"):
        load_image_folders(root, splits=("test",))
    write_image(root / "train" / "bored" / "c.png", np.zeros((48, 48), np.uint8))
    with pytest.raises(DataError, match="unknown class folder 'bored'") as error:
        load_image_folders(root)
    assert str(root / "train" / "bored") in str(error.value)


def test_a_tree_reports_the_split_evaluate_scores_by_default(tmp_path):
    from ferkit.data import default_splits
    from ferkit.evaluation.evaluate import default_eval_split

    root = tmp_path / "faces"
    for split in ("train", "val", "test"):
        write_image(root / split / "fear" / "a.png", np.zeros((48, 48), np.uint8))
    dataset = load_image_folders(root)
    assert default_splits(dataset) == ("train", "test") and default_eval_split(dataset) == "test"
    only_val = load_dataset(root, splits=("train", "val"))
    assert default_splits(only_val) == ("train", "val") and default_eval_split(only_val) == "val"


def test_class_folders_without_a_split_level_and_tiff_faces(tmp_path):
    flat = tmp_path / "flat"
    write_image(flat / "happy" / "a.png", np.zeros((48, 48), np.uint8))
    with pytest.raises(DataError) as error:
        load_image_folders(flat)
    assert str(error.value) == (f"{flat}: holds class folders where split folders belong: put them in one, such as "
                                f"{flat / 'train' / 'happy'}")
    empty = tmp_path / "empty"
    (empty / "train" / "happy").mkdir(parents=True)
    (empty / "train" / "happy" / "a.gif").write_bytes(b"GIF89a")
    with pytest.raises(DataError) as error:
        load_image_folders(empty)
    assert str(error.value) == (f"{empty}: no images found (expected <root>/<split>/<class>/ holding .png, .jpg, "
                                ".jpeg, .bmp, .webp, .tif, .tiff files)")
    write_image(empty / "train" / "happy" / "b.tif", np.full((48, 48), 7, np.uint8))
    dataset = load_image_folders(empty)
    assert dataset.images.shape == (1, 48, 48) and (dataset.images == 7).all()


def test_unreadable_image_names_the_file(tmp_path):
    path = tmp_path / "faces" / "train" / "happy" / "broken.png"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a png")
    with pytest.raises(DataError, match="not an image OpenCV can read") as error:  # read_image's words
        load_image_folders(tmp_path / "faces")
    assert str(path) in str(error.value)


def test_tree_images_are_turned_upright_by_their_exif_orientation_as_predict_does(tmp_path):
    """A phone photo stored sideways (EXIF Orientation 6: turn 90 degrees clockwise to view) was trained on
    sideways while `ferkit predict` saw it upright."""
    from PIL import Image

    from ferkit.data.folders import to_face_array
    from ferkit.inference.images import read_image

    stored = np.zeros((48, 96), np.uint8)
    stored[:24, :48] = 255  # the stored pixels' top-left quarter: the viewed photo's top right
    photo = Image.fromarray(stored)
    exif = photo.getexif()
    exif[0x0112] = 6
    path = tmp_path / "faces" / "train" / "happy" / "phone.jpg"
    path.parent.mkdir(parents=True)
    photo.save(path, quality=100, exif=exif)
    face = load_image_folders(tmp_path / "faces").images[0]
    np.testing.assert_array_equal(face, to_face_array(read_image(path)))
    upright = np.zeros((8, 8), np.uint8)
    upright[:4, 4:] = 255
    np.testing.assert_array_equal(face[::6, ::6], upright)


def test_a_tree_split_s_rows_interleave_the_classes_so_its_first_rows_hold_every_class(tmp_path):
    """--limit N keeps a split's first N rows: listed class by class, a tree's first N were its first classes
    alphabetically (--limit 300 trained on angry, disgust and fear only)."""
    root = tmp_path / "faces"
    for name, count in (("angry", 2), ("happy", 5), ("sad", 1)):
        for i in range(count):  # each face's value: its class and its place in the class's sorted files
            value = 10 * CLASS_NAMES.index(name) + i
            write_image(root / "train" / name / f"{i}.png", np.full((48, 48), value, np.uint8))
    write_image(root / "test" / "sad" / "a.png", np.full((48, 48), 200, np.uint8))
    write_image(root / "test" / "angry" / "a.png", np.full((48, 48), 201, np.uint8))
    dataset = load_image_folders(root)
    # the k-th of a class's n faces sorts at k/n (ties by class): 0 0 0, happy 1/5 2/5, angry 1/2, happy 3/5 4/5
    assert dataset.images[:, 0, 0].tolist() == [201, 200, 0, 30, 40, 31, 32, 1, 33, 34]
    assert dataset.usage.tolist() == ["test"] * 2 + ["train"] * 8
    assert [CLASS_NAMES[i] for i in dataset.split("train").labels[:3]] == ["angry", "happy", "sad"]


def test_tree_split_folders_match_in_any_case_and_hidden_folders_are_skipped(tmp_path):
    root = tmp_path / "faces"
    write_image(root / "Train" / "Happy" / "a.png", np.full((48, 48), 1, np.uint8))
    write_image(root / "TEST" / "sad" / "a.png", np.full((48, 48), 2, np.uint8))
    write_image(root / "Holdout" / "fear" / "a.png", np.full((48, 48), 3, np.uint8))  # not a known name: as spelt
    # left by Jupyter, macOS zips and Finder: none of them is a split, a class or a face
    write_image(root / "Train" / ".ipynb_checkpoints" / "a.png", np.full((48, 48), 4, np.uint8))
    write_image(root / "Train" / "Happy" / ".ipynb_checkpoints" / "a.png", np.full((48, 48), 5, np.uint8))
    write_image(root / "__MACOSX" / "Train" / "Happy" / "._a.png", np.full((48, 48), 6, np.uint8))
    write_image(root / "Train" / "__MACOSX" / "a.png", np.full((48, 48), 7, np.uint8))
    (root / "Train" / "Happy" / "._b.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble, not an image")
    write_image(root / ".cache" / "happy" / "a.png", np.full((48, 48), 8, np.uint8))
    dataset = load_image_folders(root)
    assert dataset.images[:, 0, 0].tolist() == [3, 2, 1]
    assert dataset.usage.tolist() == ["Holdout", "test", "train"]
    assert default_splits(dataset) == ("train", "test")
    assert load_image_folders(root, splits=("test", "TRAIN")).usage.tolist() == ["test", "train"]
    # the split the user names, as the folder spells it: `--split Test` of a `TEST/` folder, `--split holdout`
    assert dataset.split("Test").images[:, 0, 0].tolist() == [2]
    assert dataset.split("holdout", "TRAIN").images[:, 0, 0].tolist() == [3, 1]


# --- FER+ ----------------------------------------------------------------------------------------

def votes_row(**votes) -> list[int]:
    return [votes.get(column, 0) for column in VOTE_COLUMNS]


# One row per face of tiny_csv(rows_per_split=3): expected majority label (None: dropped) and soft label.
FERPLUS_ROWS = [
    (votes_row(happiness=7, neutral=3), "happy", {"happy": 0.7, "neutral": 0.3}),
    (votes_row(contempt=6, anger=4), None, {"angry": 1.0}),
    (votes_row(unknown=5, fear=2, sadness=3), None, {"fear": 0.4, "sad": 0.6}),
    (votes_row(NF=10), None, None),
    (votes_row(surprise=4, fear=3, disgust=3), "surprise", {"surprise": 0.4, "fear": 0.3, "disgust": 0.3}),
    (votes_row(anger=9, NF=1), "angry", {"angry": 1.0}),
]


def write_votes(path, usages, rows) -> None:
    lines = ["Usage,Image name," + ",".join(VOTE_COLUMNS)]
    lines += [f"{usage},fer{i:07d}.png," + ",".join(map(str, row)) for i, (usage, row) in enumerate(zip(usages, rows))]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def ferplus_pair(tiny_csv, tmp_path):
    """(fer2013 CSV with 3 Training + 3 PublicTest rows, matching votes file)."""
    csv_path = tiny_csv(rows_per_split=3)
    votes_path = tmp_path / "fer2013new.csv"
    write_votes(votes_path, ["Training"] * 3 + ["PublicTest"] * 3, [row for row, _, _ in FERPLUS_ROWS])
    return csv_path, votes_path


def test_ferplus_majority_labels(ferplus_pair):
    csv_path, votes_path = ferplus_pair
    original = load_dataset(csv_path)
    dataset = load_dataset(csv_path, labels="ferplus", ferplus_votes=votes_path)
    kept = [i for i, (_, majority, _) in enumerate(FERPLUS_ROWS) if majority]
    assert [CLASS_NAMES[i] for i in dataset.labels] == [FERPLUS_ROWS[i][1] for i in kept]
    np.testing.assert_array_equal(dataset.images, original.images[kept])  # faces stay with their votes
    np.testing.assert_array_equal(dataset.usage, original.usage[kept])
    assert len(load_dataset(csv_path, labels="ferplus", ferplus_votes=votes_path, splits=("PublicTest",))) == 2


def test_ferplus_soft_labels(ferplus_pair):
    csv_path, votes_path = ferplus_pair
    dataset = load_dataset(csv_path, labels="ferplus", ferplus_votes=votes_path, ferplus_mode="soft")
    expected_rows = [soft for _, _, soft in FERPLUS_ROWS if soft]  # only the not-a-face row has no emotion vote
    expected = np.zeros((len(expected_rows), NUM_CLASSES), np.float32)
    for row, soft in enumerate(expected_rows):
        for name, share in soft.items():
            expected[row, CLASS_NAMES.index(name)] = share
    np.testing.assert_allclose(dataset.labels, expected, atol=1e-6)
    assert dataset.labels.dtype == np.float32


def test_ferplus_votes_default_beside_the_csv_folder(tmp_path, tiny_csv):
    csv_path = tiny_csv(rows_per_split=3)
    data_dir = tmp_path / "data"
    (data_dir / "fer2013").mkdir(parents=True)
    (data_dir / "ferplus").mkdir()
    moved = csv_path.rename(data_dir / "fer2013" / "fer2013.csv")
    write_votes(data_dir / "ferplus" / "fer2013new.csv", ["Training"] * 3 + ["PublicTest"] * 3,
                [row for row, _, _ in FERPLUS_ROWS])
    assert len(load_dataset(moved, labels="ferplus")) == 3


def test_ferplus_misaligned_files(tiny_csv, tmp_path):
    csv_path = tiny_csv(rows_per_split=3)
    votes_path = tmp_path / "fer2013new.csv"
    rows = [row for row, _, _ in FERPLUS_ROWS]
    write_votes(votes_path, ["Training"] * 3 + ["PublicTest"] * 2, rows[:5])
    with pytest.raises(DataError, match="5 rows but .* has 6") as error:
        load_dataset(csv_path, labels="ferplus", ferplus_votes=votes_path)
    assert str(votes_path) in str(error.value)
    write_votes(votes_path, ["Training"] * 2 + ["PublicTest"] * 4, rows)
    with pytest.raises(DataError, match="line 4: Usage 'PublicTest' does not match") as error:
        load_dataset(csv_path, labels="ferplus", ferplus_votes=votes_path)
    assert str(votes_path) in str(error.value)


def test_ferplus_bad_votes_file(tiny_csv, tmp_path):
    csv_path = tiny_csv(rows_per_split=3)
    votes_path = tmp_path / "fer2013new.csv"
    write_votes(votes_path, ["Training"] * 3 + ["PublicTest"] * 3, [row for row, _, _ in FERPLUS_ROWS])
    replace_line(votes_path, 3, lambda fields: ",".join(fields[:3] + ["many"] + fields[4:]))
    with pytest.raises(DataError, match="line 3: votes must be numbers") as error:
        load_dataset(csv_path, labels="ferplus", ferplus_votes=votes_path)
    assert str(votes_path) in str(error.value)
    with pytest.raises(DataError, match="no such file"):
        load_dataset(csv_path, labels="ferplus", ferplus_votes=tmp_path / "absent.csv")
    with pytest.raises(DataError, match="image folder"):
        load_dataset(tmp_path, labels="ferplus")


def test_ferplus_votes_default_beside_the_csv_folder_also_for_a_bare_file_name(tiny_csv, tmp_path, monkeypatch):
    """The shared layout: data/fer2013/fer2013.csv and data/ferplus/fer2013new.csv. Given as "small.csv" from its
    own folder, the CSV's folder is still the current one, and the votes are looked for one level up."""
    (tmp_path / "data" / "fer2013").mkdir(parents=True)
    csv_path = tiny_csv(rows_per_split=3).replace(tmp_path / "data" / "fer2013" / "small.csv")
    (tmp_path / "data" / "ferplus").mkdir()
    write_votes(tmp_path / "data" / "ferplus" / "fer2013new.csv", ["Training"] * 3 + ["PublicTest"] * 3,
                [row for row, _, _ in FERPLUS_ROWS])
    monkeypatch.chdir(csv_path.parent)
    relative = load_dataset("small.csv", labels="ferplus")
    np.testing.assert_array_equal(relative.labels, load_dataset(csv_path, labels="ferplus").labels)
    (tmp_path / "data" / "ferplus" / "fer2013new.csv").unlink()
    with pytest.raises(DataError) as error:
        load_dataset("small.csv", labels="ferplus")
    assert str(error.value) == (f"{tmp_path / 'data' / 'ferplus' / 'fer2013new.csv'}: no such file (FER+ votes; "
                                "--ferplus-votes names another)")


def test_ferplus_votes_mixed_into_fer2013_labels(ferplus_pair, tmp_path):
    csv_path, votes_path = ferplus_pair
    original = load_dataset(csv_path)
    mixed = load_dataset(csv_path, ferplus_votes=votes_path, ferplus_weight=0.3)
    expected = np.eye(NUM_CLASSES, dtype=np.float32)[original.labels]
    for row, (_, _, soft) in enumerate(FERPLUS_ROWS):
        if soft:  # the not-a-face row has no vote to mix in and keeps its one-hot label
            expected[row] *= 0.7
            for name, share in soft.items():
                expected[row, CLASS_NAMES.index(name)] += 0.3 * share
    np.testing.assert_allclose(mixed.labels, expected, atol=1e-6)
    assert mixed.labels.dtype == np.float32
    # below half, every row's arg-max is still its FER2013 label: same holdout draw, same scores
    np.testing.assert_array_equal(mixed.hard_labels, original.labels)
    np.testing.assert_array_equal(mixed.images, original.images)
    np.testing.assert_array_equal(mixed.usage, original.usage)
    test_only = load_dataset(csv_path, ferplus_votes=votes_path, ferplus_weight=0.3, splits=("PublicTest",))
    np.testing.assert_allclose(test_only.labels, expected[3:], atol=1e-6)
    with pytest.raises(DataError, match="FER\\+ vote weight 0.5: expected a share from 0 to below 0.5"):
        load_dataset(csv_path, ferplus_votes=votes_path, ferplus_weight=0.5)
    with pytest.raises(DataError, match="with FER\\+ labels it has no meaning"):
        load_dataset(csv_path, labels="ferplus", ferplus_votes=votes_path, ferplus_weight=0.3)
    with pytest.raises(DataError, match="image folder"):
        load_dataset(tmp_path, ferplus_weight=0.3)
    with pytest.raises(DataError, match="no such file"):
        load_dataset(csv_path, ferplus_votes=tmp_path / "absent.csv", ferplus_weight=0.3)


# --- augmentation and class weights --------------------------------------------------------------

@pytest.fixture
def faces():
    return np.random.default_rng(0).integers(0, 256, (6, 48, 48), dtype=np.uint8)


def test_augmentation_keeps_shape_and_dtype_and_input(faces):
    before = faces.copy()
    out = Augmentation(erase=0.5).apply(faces, np.random.default_rng(1))
    assert out.shape == faces.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(faces, before)
    assert not np.array_equal(out, faces)


def test_augmentation_is_deterministic_per_seed(faces):
    augment = Augmentation(erase=0.5)
    first = augment.apply(faces, np.random.default_rng(7))
    np.testing.assert_array_equal(first, augment.apply(faces, np.random.default_rng(7)))
    assert not np.array_equal(first, augment.apply(faces, np.random.default_rng(8)))


def test_augmentation_without_geometry_only_mirrors(faces):
    out = Augmentation(rotation=0, shift=0, zoom=0, flip=True).apply(faces, np.random.default_rng(3))
    mirrored = [np.array_equal(o, f[:, ::-1]) for o, f in zip(out, faces)]
    unchanged = [np.array_equal(o, f) for o, f in zip(out, faces)]
    assert all(m or u for m, u in zip(mirrored, unchanged)) and any(mirrored) and any(unchanged)


def test_the_existing_levels_keep_their_exact_random_stream(faces):
    """New augmentation fields draw nothing unless set: `standard` and `strong` give, pixel for pixel,
    what they gave before them (checksums recorded then), so old runs' commands still reproduce."""
    from ferkit.training.fit import AUGMENTATIONS

    sums = {level: int(AUGMENTATIONS[level].apply(faces, np.random.default_rng(7)).astype(np.int64).sum())
            for level in ("standard", "strong")}
    assert sums == {"standard": 1776634, "strong": 1843213}


def still(**kwargs) -> Augmentation:
    return Augmentation(flip=False, rotation=0, shift=0, zoom=0, **kwargs)


def test_brightness_adds_one_offset_per_face(faces):
    mid = np.clip(faces, 60, 195)  # no pixel reaches 0 or 255 after a shift of at most 38
    out = still(brightness=0.15).apply(mid, np.random.default_rng(4))
    offsets = []
    for o, f in zip(out.astype(int), mid.astype(int)):
        shifts = np.unique(o - f)
        assert len(shifts) <= 2 and shifts.max() - shifts.min() <= 1  # one offset, rounded
        assert np.abs(shifts).max() <= 39  # 0.15 x 255 = 38.25
        offsets.append(int(shifts.mean().round()))
    assert len(set(offsets)) == len(mid)  # drawn per face


def test_contrast_scales_around_the_face_mean():
    face = np.tile(np.array([100, 140], np.uint8), (48, 24))  # half 100, half 140: mean 120
    out = still(contrast=0.3).apply(np.stack([face] * 4), np.random.default_rng(5))
    gains = []
    for o in out.astype(int):
        low, high = np.unique(o)
        assert abs(low + high - 240) <= 1  # symmetric about the mean
        assert (o == low).sum() == (o == high).sum() == 48 * 24  # each pixel keeps its side
        gains.append((high - low) / 40)
    assert all(0.7 - 0.05 <= g <= 1.3 + 0.05 for g in gains) and max(gains) - min(gains) > 0.05


def test_photometric_clips_to_the_pixel_range():
    from ferkit.data.augment import photometric

    face = np.array([[0, 128, 255]], np.uint8)
    np.testing.assert_array_equal(photometric(face, 100.0, 1.0), [[100, 228, 255]])
    np.testing.assert_array_equal(photometric(face, 0.0, 2.0), [[0, 128, 255]])  # mean 127.67: 0 and 255 clip
    np.testing.assert_array_equal(photometric(face, -50.0, 0.5), [[14, 78, 141]])  # 127.67 + (255 - 127.67) / 2 - 50 = 141.3


def test_lowres_is_a_shrink_and_enlarge_at_a_drawn_side(faces):
    from ferkit.data.augment import LOWRES_SIDES

    out = still(lowres=1.0).apply(faces, np.random.default_rng(6))
    for o, f in zip(out, faces):
        matches = [side for side in range(LOWRES_SIDES[0], LOWRES_SIDES[1] + 1)
                   if np.array_equal(o, cv2.resize(cv2.resize(f, (side, side), interpolation=cv2.INTER_AREA),
                                                   (48, 48), interpolation=cv2.INTER_LINEAR))]
        assert len(matches) == 1
    half = still(lowres=0.5).apply(faces, np.random.default_rng(6))
    kept = [np.array_equal(h, f) for h, f in zip(half, faces)]
    assert any(kept) and not all(kept)


def test_jpeg_is_a_round_trip_at_a_drawn_quality(faces):
    from ferkit.data.augment import JPEG_QUALITIES, jpeg_round_trip

    out = still(jpeg=1.0).apply(faces, np.random.default_rng(8))
    found = [[q for q in range(JPEG_QUALITIES[0], JPEG_QUALITIES[1] + 1)
              if np.array_equal(o, jpeg_round_trip(f, q))] for o, f in zip(out, faces)]
    assert all(found) and len({q[0] for q in found}) > 1  # each face one quality in range, not all the same
    assert not any(np.array_equal(o, f) for o, f in zip(out, faces))


def test_class_weights_favour_the_rare_class():
    labels = np.array([3] * 50 + [1] * 2 + [0, 2, 4, 5, 6] * 10)
    weights = class_weights(labels)
    assert max(weights, key=weights.get) == 1 and min(weights, key=weights.get) == 3
    assert np.mean([weights[c] for c in labels]) == pytest.approx(1.0)  # the average sample keeps weight 1


# --- training batches ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def face_batches_class():
    from ferkit.training.backend import setup_keras

    setup_keras()
    from ferkit.training.batches import FaceBatches

    return FaceBatches


def make_batches(face_batches_class, n=70, **kwargs):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 48, 48), dtype=np.uint8)
    targets = np.eye(NUM_CLASSES, dtype=np.float32)[np.arange(n) % NUM_CLASSES]
    return face_batches_class(images, targets, batch_size=32, seed=5, **kwargs)


def test_face_batches_shapes_and_coverage(face_batches_class):
    batches = make_batches(face_batches_class, augmentation=None)
    assert len(batches) == 3
    shapes = [(x.shape, y.shape) for x, y in (batches[i] for i in range(3))]
    assert shapes == [((32, 48, 48, 1), (32, 7))] * 2 + [((6, 48, 48, 1), (6, 7))]
    x, _ = batches[0]
    assert x.dtype == np.float32 and x.max() > 1  # raw 0..255 pixels: the models rescale inside
    seen = np.concatenate([batches[i][0] for i in range(3)])
    np.testing.assert_array_equal(np.sort(seen.reshape(70, -1), axis=0),
                                  np.sort(batches.images.reshape(70, -1).astype(np.float32), axis=0))


def test_face_batches_unshuffled_keep_order(face_batches_class):
    batches = make_batches(face_batches_class, shuffle=False)
    np.testing.assert_array_equal(batches[0][0][..., 0], batches.images[:32])


def test_face_batches_sample_weights(face_batches_class):
    weights = np.arange(70, dtype=np.float32)
    batches = make_batches(face_batches_class, sample_weights=weights, shuffle=False)
    x, y, w = batches[1]
    np.testing.assert_array_equal(w, weights[32:64])
    assert x.shape == (32, 48, 48, 1) and y.shape == (32, 7)


def test_face_batches_repeat_per_epoch(face_batches_class):
    """A resumed run calls set_epoch(k): it must see exactly the batches an uninterrupted run saw."""
    batches = make_batches(face_batches_class, augmentation=Augmentation())
    batches.set_epoch(3)
    first = [batches[i] for i in range(len(batches))]
    batches.set_epoch(0)
    other_epoch = batches[0]
    batches.set_epoch(3)
    again = [batches[i] for i in range(len(batches))]
    for (x1, y1), (x2, y2) in zip(first, again):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(first[0][0], other_epoch[0])
    batches.on_epoch_end()
    assert batches.epoch == 4


def test_face_batches_mixup_blends_faces_targets_and_weights_alike(face_batches_class):
    # two kinds of face, flat grey 10 (class 0, weight 1) and flat grey 200 (class 3, weight 5): every blend
    # of a pair is flat, and its grey level says exactly how much of each face went in
    images = np.where(np.arange(64) % 2 == 0, 10, 200).astype(np.uint8)[:, None, None].repeat(48, 1).repeat(48, 2)
    labels = np.where(np.arange(64) % 2 == 0, 0, 3)
    weights = np.where(labels == 0, 1.0, 5.0).astype(np.float32)
    batches = face_batches_class(images, np.eye(NUM_CLASSES, dtype=np.float32)[labels], batch_size=64, seed=5,
                                 shuffle=False, sample_weights=weights, mixup=0.4)
    x, y, w = batches[0]
    grey = x[:, 0, 0, 0]
    np.testing.assert_array_equal(x, grey[:, None, None, None] * np.ones((1, 48, 48, 1), np.float32))
    share_of_10 = (200 - grey) / 190  # the blend's share of the grey-10 face (class 0)
    np.testing.assert_allclose(y[:, 0], share_of_10, atol=1e-5)
    np.testing.assert_allclose(y[:, 3], 1 - share_of_10, atol=1e-5)
    np.testing.assert_allclose(y.sum(1), 1, atol=1e-6)
    np.testing.assert_allclose(w, share_of_10 * 1 + (1 - share_of_10) * 5, rtol=1e-5)
    assert (y[np.arange(64), labels] >= 0.5 - 1e-6).all()  # each face stays the larger part of its blend
    blended = (y.max(1) < 0.999).mean()
    assert blended > 0.25  # about half the pairs meet a face of the other kind
    again = batches[0]
    np.testing.assert_array_equal(again[0], x)  # the same (seed, epoch, batch): the same blend, for --resume
    batches.set_epoch(1)
    assert not np.array_equal(batches[0][1], y)


def test_face_batches_mixup_off_and_on_share_the_augmentation(face_batches_class):
    plain = make_batches(face_batches_class, augmentation=Augmentation(), shuffle=False)
    mixed = make_batches(face_batches_class, augmentation=Augmentation(), shuffle=False, mixup=1e-3)
    x_plain, y_plain = plain[0]
    x_mixed, y_mixed = mixed[0]
    # alpha near 0: shares are 0 or 1, so the faces are the augmented faces, unblended
    np.testing.assert_allclose(x_mixed, x_plain, atol=0.5)
    np.testing.assert_allclose(y_mixed, y_plain, atol=1e-3)


def grey_teacher(faces):
    """A stand-in teacher whose scores depend on exactly what it is shown: class 1's share is the mean grey / 255."""
    grey = faces.reshape(len(faces), -1).mean(1) / 255
    probs = np.zeros((len(faces), NUM_CLASSES), np.float32)
    probs[:, 1], probs[:, 5] = grey, 1 - grey
    return probs


def test_face_batches_consistent_teacher_scores_the_batch_as_the_student_sees_it(face_batches_class):
    shown = []

    def teacher(faces):
        shown.append(faces.copy())
        return grey_teacher(faces)

    augmented = dict(augmentation=Augmentation(rotation=10, shift=0.1, zoom=0.1), shuffle=True, mixup=0.4)
    taught = make_batches(face_batches_class, teacher=teacher, distill_weight=0.7, **augmented)
    plain = make_batches(face_batches_class, **augmented)
    for index in (0, 2):
        x, y = taught[index]
        x_plain, y_plain = plain[index]
        np.testing.assert_array_equal(x, x_plain)  # the teacher changes the targets only
        np.testing.assert_array_equal(shown[-1], x)  # it saw the augmented, blended faces the student gets
        np.testing.assert_allclose(y, 0.7 * grey_teacher(x) + 0.3 * y_plain, atol=1e-6)
    assert not np.allclose(grey_teacher(x), grey_teacher(taught.images[taught.order[64:]][..., None]), atol=1e-3)
    only_teacher = make_batches(face_batches_class, teacher=grey_teacher, distill_weight=1.0, **augmented)
    x, y = only_teacher[1]
    np.testing.assert_allclose(y, grey_teacher(x), atol=1e-6)


def test_holdout_is_stratified_disjoint_and_seeded():
    labels = np.repeat(np.arange(7), [50, 10, 40, 90, 60, 30, 70])
    images = np.arange(len(labels), dtype=np.uint64)[:, None, None].repeat(48, 1).repeat(48, 2)
    dataset = FaceDataset(images, labels, np.full(len(labels), "Training"), "synthetic")
    rest, held = dataset.holdout(0.1, seed=3)
    assert len(rest) + len(held) == len(dataset)
    assert not set(rest.images[:, 0, 0]) & set(held.images[:, 0, 0])  # no face in both
    assert np.bincount(held.labels, minlength=7).tolist() == [5, 1, 4, 9, 6, 3, 7]  # 10% of every class
    again, _ = dataset.holdout(0.1, seed=3)
    other, _ = dataset.holdout(0.1, seed=4)
    assert np.array_equal(again.images, rest.images) and not np.array_equal(other.images, rest.images)
    with pytest.raises(DataError, match="leaves a split empty"):
        dataset.select(np.arange(len(dataset)) < 3).holdout(0.1, seed=0)
