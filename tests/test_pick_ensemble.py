"""scripts/pick_ensemble.py: member weights fitted on the holdout, and their honest (cross-validated) score."""

import math
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import load_script

pytest.importorskip("scipy")
pick = load_script("scripts/pick_ensemble.py")


def one_hot_ish(labels, right, rng, n_classes=7):
    """Probabilities that put 0.9 on the true class for the faces in `right`, 0.9 on a wrong one elsewhere."""
    probs = np.full((len(labels), n_classes), 0.1 / (n_classes - 1))
    wrong = (labels + 1 + rng.integers(0, n_classes - 1, len(labels))) % n_classes
    target = np.where(right, labels, wrong)
    probs[np.arange(len(labels)), target] = 0.9
    return probs


def test_fit_weights_favours_the_better_member_and_sums_to_one():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 7, 600)
    good = one_hot_ish(labels, rng.random(600) < 0.8, rng)
    bad = one_hot_ish(labels, rng.random(600) < 0.3, rng)
    w = pick.fit_weights(np.stack([bad, good]), labels)
    assert w.shape == (2,) and w.sum() == pytest.approx(1.0) and (w >= 0).all()
    assert w[1] > 0.75 > w[0]  # order matters: the weight follows the member, not the position


def test_fit_weights_minimises_the_log_loss():
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 7, 400)
    members = np.stack([one_hot_ish(labels, rng.random(400) < q, rng) for q in (0.5, 0.6, 0.7)])
    w = pick.fit_weights(members, labels)

    def loss(weights):
        return -np.log(np.tensordot(weights, members, 1)[np.arange(400), labels]).mean()

    for other in ([1 / 3] * 3, [0, 0, 1], [0.2, 0.3, 0.5], w[::-1]):
        assert loss(w) <= loss(np.asarray(other)) + 1e-9


def test_cross_validated_accuracy_counts_every_face_once():
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 7, 250)
    right = rng.random(250) < 0.6
    member = one_hot_ish(labels, right, rng)
    # two copies of one member: any weights give that member's own accuracy, exactly
    assert pick.cross_validated_accuracy(np.stack([member, member]), labels) == pytest.approx(right.mean())
    # a perfect member beside it: the folds' weights pick it, so every face is right
    perfect = one_hot_ish(labels, np.ones(250, bool), rng)
    assert pick.cross_validated_accuracy(np.stack([member, perfect]), labels) == 1.0


@pytest.mark.parametrize("no_publictest", [False, True])
def test_main_scores_publictest_only_without_the_flag(tiny_csv, tiny_model_dir, tmp_path, monkeypatch, capsys,
                                                     no_publictest):
    data = tiny_csv({"Training": 70, "PublicTest": 9})  # 10 faces per class: one per class held out
    monkeypatch.setattr(pick, "CACHE", tmp_path / "cache")
    monkeypatch.setattr(pick, "time_per_face", lambda model, batch, repeats: 1.0)
    monkeypatch.setattr("sys.argv", ["pick_ensemble.py", str(tiny_model_dir), "--data", str(data), "--budget-ms", "1",
                                     *(["--no-publictest"] if no_publictest else [])])
    pick.main()
    picked = capsys.readouterr().out.splitlines()[-1]
    assert picked.startswith(f"picked: {tiny_model_dir} with 1 view(s), weights 1.000, 1.00 ms per face; holdout ")
    tags = sorted(path.name.rsplit("-", 1)[1] for path in (tmp_path / "cache").iterdir())
    if no_publictest:  # PublicTest's faces were never run through a model
        assert picked.endswith("PublicTest not scored (--no-publictest)") and tags == ["holdout.npy"]
    else:
        assert picked.endswith("(scored once, after picking)") and " PublicTest " in picked
        assert tags == ["holdout.npy", "publictest.npy"]


def test_main_scores_per_member_view_mixes_beside_the_others(tiny_csv, tiny_model_dir, tmp_path, monkeypatch,
                                                             capsys):
    import shutil

    data = tiny_csv({"Training": 70, "PublicTest": 9})
    second = Path(shutil.copytree(tiny_model_dir, tmp_path / "second"))
    monkeypatch.setattr(pick, "CACHE", tmp_path / "cache")
    monkeypatch.setattr("sys.argv", ["pick_ensemble.py", str(tiny_model_dir), str(second), "--data", str(data),
                                     "--budget-ms", "0.75", "--member-ms", "0.25", "--per-member-views", "10",
                                     "--show", "20", "--no-publictest"])
    pick.main()
    out = capsys.readouterr().out.splitlines()
    # 0.25 ms a view: of the pair's mixed counts only (1, 2) and (2, 1) fit 0.75 ms
    assert "(per-member views: 2 mixes from the subsets of the best 10)" in out
    listed = [line for line in out if line.startswith("  ") and " ms  " in line]
    assert sum(" views 1+2 " in line for line in listed) == 1 and sum(" views 2+1 " in line for line in listed) == 1
    assert all(" 0.75 ms " in line for line in listed if " views " in line)
    assert out[-1].startswith("picked: ")


def test_candidates_with_views_inside_their_graph_are_refused():
    from ferkit.inference.classifier import resolve_model

    repo = Path(__file__).resolve().parents[1]
    network = repo / "members/m1-fast-e66-s42/model.onnx"
    assert pick.single_network(network) == network
    with pytest.raises(SystemExit, match="views inside its graph"):
        pick.single_network(resolve_model("fast") / "model.onnx")  # the mirror is already inside


def test_member_ms_replaces_the_timing(tiny_csv, tiny_model_dir, tmp_path, monkeypatch, capsys):
    data = tiny_csv({"Training": 70, "PublicTest": 9})

    def no_timing(*_, **__):
        raise AssertionError("timed a member although --member-ms was given")

    monkeypatch.setattr(pick, "CACHE", tmp_path / "cache")
    monkeypatch.setattr(pick, "time_per_face", no_timing)
    monkeypatch.setattr("sys.argv", ["pick_ensemble.py", str(tiny_model_dir), "--data", str(data),
                                     "--budget-ms", "1", "--member-ms", "0.25", "--no-publictest"])
    pick.main()
    picked = capsys.readouterr().out.splitlines()[-1]
    # 0.25 ms a view: four views fit the 1 ms budget (and tie the one-view score at worst: the first kept)
    assert " view(s), weights 1.000, " in picked
    assert picked.split(" view(s)")[0].endswith(("1", "2", "4"))
    assert f"{int(picked.split(' with ')[1][0]) * 0.25:.2f} ms per face" in picked


def test_member_ms_scales_wider_candidates_by_their_multiply_adds(monkeypatch):
    macs = {"narrow": 117_000_000, "wide": 264_000_000, "same": 117_000_000}
    monkeypatch.setattr(pick, "count_macs", lambda json_path: (0, macs[json_path.parent.name]))
    paths = [Path(name) / "model.onnx" for name in ("wide", "narrow", "same")]
    assert pick.scaled_costs(paths, 0.5) == pytest.approx([0.5 * 264 / 117, 0.5, 0.5])


def test_member_ms_counts_the_multiply_adds_of_each_candidates_model_json(tmp_path):
    """Real architectures' model.json: a `medium` view is priced at 264 M / 117 M = 2.26 `compact` views
    (the model table's multiply-adds), whatever order the candidates come in."""
    from ferkit.models import create_model

    paths = []
    for family in ("medium", "compact"):
        (tmp_path / family).mkdir()
        (tmp_path / family / "model.json").write_text(create_model(family).to_json())
        paths.append(tmp_path / family / "model.onnx")
    medium, compact = pick.scaled_costs(paths, 0.4)
    assert (compact, medium) == pytest.approx((0.4, 0.4 * 264 / 117), rel=0.01)


def test_int8_ranking_adds_the_int8_change_and_reranks(tiny_csv, tiny_model_dir, tmp_path, monkeypatch, capsys):
    import shutil

    import ferkit.training.quantize as quantize
    from ferkit.data import load_dataset
    from ferkit.inference.classifier import FacialExpressionModel

    data = tiny_csv({"Training": 140, "PublicTest": 7})
    _, held = load_dataset(data).split("Training").holdout(0.1, 42)
    labels = held.hard_labels
    network = tiny_model_dir / "model.onnx"
    # the "int8" graph here is the float one, so the int8 figure is the network's own holdout accuracy
    monkeypatch.setattr(quantize, "quantize_onnx", lambda source, out, faces, member_views: Path(shutil.copy(source, out)))
    monkeypatch.setattr(pick, "INT8_DIR", tmp_path / "int8")
    monkeypatch.setattr(pick, "time_per_face", lambda model, batch, repeats: 0.5)
    (tmp_path / "int8").mkdir()
    actual = float((FacialExpressionModel(network).predict_proba(held.images).argmax(1) == labels).mean())
    perfect = np.eye(7)[labels][None].repeat(4, 0)            # cached float views: every face right...
    wrong = np.eye(7)[(labels + 1) % 7][None].repeat(4, 0)    # ...or every face wrong
    rows = [(0.9, -0.5, (0,), 1, 0.8, None), (0.8, -0.6, (1,), 1, 0.8, None)]
    ranked = pick.int8_ranking(rows, [network, network], ["a-one", "b-two"], held, [perfect, wrong], str(data))
    # estimate = ranking accuracy + (int8 holdout - float holdout of the same mix)
    assert [r[0] for r in ranked] == pytest.approx([0.8 + actual - 0.0, 0.9 + actual - 1.0])
    assert [r[2] for r in ranked] == [(1,), (0,)] and [r[4] for r in ranked] == [0.5, 0.5]
    assert sorted(p.name for p in (tmp_path / "int8").iterdir()) == ["a-v1.onnx", "b-v1.onnx"]


def test_stacked_takes_each_members_own_view_count():
    rng = np.random.default_rng(3)
    views = [rng.random((4, 5, 7)), rng.random((4, 5, 7))]
    np.testing.assert_allclose(pick.stacked(views, (1, 0), (4, 1)), np.stack([views[1].mean(0), views[0][0]]))
    np.testing.assert_allclose(pick.stacked(views, (0, 1), 2), np.stack([views[0][:2].mean(0), views[1][:2].mean(0)]))
    np.testing.assert_allclose(pick.mix(views, (0, 1), (2, 4), np.array([0.25, 0.75])),
                               0.25 * views[0][:2].mean(0) + 0.75 * views[1].mean(0))
    assert (pick.views_text((4, 1)), pick.views_text(2)) == ("views 4+1", "2 view(s)")


def test_per_member_mixes_are_the_mixed_assignments_of_the_top_subsets_within_budget():
    ranked = [(0.9, -0.1, (0, 2), 1, 0.0, None), (0.8, -0.2, (0, 2), 2, 0.0, None), (0.7, -0.3, (1,), 1, 0.0, None)]
    found = pick.per_member_mixes(ranked, costs=[1.0, 0.5, 2.0], budget=6.0, top=2)  # (1,) is not in the top 2
    assert [(subset, counts) for subset, counts, _ in found] == [((0, 2), (1, 2)), ((0, 2), (2, 1)), ((0, 2), (4, 1))]
    assert [cost for _, _, cost in found] == [5.0, 4.0, 6.0]  # 1x1 + 2x2, 2x1 + 1x2, 4x1 + 1x2: (2, 4) costs 10
    assert pick.int8_path(["m1-a", "m7-b", "m9-c"], (0, 2), (4, 1), None).name == "m1+m9-v41.onnx"
    assert pick.int8_path(["m1-a", "m7-b", "m9-c"], (0, 2), 2, np.array([0.5, 0.5])).name == "m1+m9-v2-fitted.onnx"


def test_meets_floors_compares_each_conditions_mix_with_its_floor():
    rng = np.random.default_rng(5)
    labels = np.arange(10) % 7
    good = one_hot_ish(labels, np.arange(10) < 8, rng)   # right on 8 of 10 degraded faces
    poor = one_hot_ish(labels, np.arange(10) < 4, rng)   # right on 4
    views = [np.stack([good] * 4), np.stack([poor] * 4)]
    floors = {"24 px": pick.Floor(0.8, views, labels)}
    assert pick.meets_floors(floors, (0,), 1, np.array([1.0]))  # 0.8 >= 0.8: a floor is met when equalled
    assert not pick.meets_floors(floors, (1,), 4, np.array([1.0]))
    assert pick.meets_floors(floors, (0, 1), 2, np.array([0.8, 0.2]))  # the mix follows its heavier member
    assert not pick.meets_floors(floors, (0, 1), 2, np.array([0.2, 0.8]))
    # every condition must hold: a second, unmet floor rejects what the first accepts
    assert not pick.meets_floors({**floors, "blur s1.5": pick.Floor(0.9, views, labels)}, (0,), 1, np.array([1.0]))
    assert pick.meets_floors({}, (1,), 1, np.array([1.0]))  # no floors: everything passes
    # each floor scores against its own labels: under shifted ones the 8 right faces turn wrong (<= 2 of 10 right)
    assert not pick.meets_floors({"other": pick.Floor(0.25, views, (labels + 1) % 7)}, (0,), 1, np.array([1.0]))


def test_a_floors_photos_without_a_face_count_as_wrong():
    rng = np.random.default_rng(8)
    labels = np.arange(10) % 7
    views = [np.stack([one_hot_ish(labels, np.arange(10) < 8, rng)] * 4)]  # 8 of the 10 faces found
    assert pick.Floor(0.7, views, labels, total=12).scored((0,), 1, np.array([1.0])) == pytest.approx(8 / 12)
    assert not pick.meets_floors({"tw-faces": pick.Floor(0.7, views, labels, total=12)}, (0,), 1, np.array([1.0]))
    assert pick.meets_floors({"tw-faces": pick.Floor(0.7, views, labels)}, (0,), 1, np.array([1.0]))  # 8 / 10


def test_robust_floor_scores_degraded_holdout_faces_and_filters_the_ranking(tiny_csv, tiny_model_dir, tmp_path,
                                                                           monkeypatch, capsys):
    data = tiny_csv({"Training": 70, "PublicTest": 9})
    monkeypatch.setattr(pick, "CACHE", tmp_path / "cache")
    argv = ["pick_ensemble.py", str(tiny_model_dir), "--data", str(data), "--member-ms", "0.25", "--budget-ms", "1",
            "--no-publictest", "--robust-floor", str(tiny_model_dir)]
    monkeypatch.setattr("sys.argv", argv)
    pick.main()
    out = capsys.readouterr().out
    assert f"robustness floors ({tiny_model_dir} on the holdout): 24 px " in out and ", blur s1.5 " in out
    # the candidate as is scores exactly what the floor model scores, so at least its one-view mix is ranked
    assert out.splitlines()[-1].startswith(f"picked: {tiny_model_dir} with ")
    tags = sorted(path.name.rsplit("-", 1)[1] for path in (tmp_path / "cache").iterdir())
    assert tags == ["24px.npy", "blurs15.npy", "holdout.npy"]  # holdout-24px, holdout-blurs15: their own cache

    real = pick.robust_floors
    monkeypatch.setattr(pick, "robust_floors",  # out of reach
                        lambda *a: {c: pick.Floor(1.01, f.views, f.labels) for c, f in real(*a).items()})
    with pytest.raises(SystemExit, match="no mix fits the budget and the floors"):
        pick.main()


def test_paired_comparison_counts_the_faces_only_one_model_gets_right():
    labels = np.arange(20) % 7
    rng = np.random.default_rng(11)
    winner_right = np.arange(20) < 15            # faces 0-14
    reference_right = (np.arange(20) >= 9) & (np.arange(20) != 19)  # faces 9-18
    c = pick.paired_comparison(one_hot_ish(labels, winner_right, rng), one_hot_ish(labels, reference_right, rng),
                               labels)
    # the winner alone: faces 0-8 (9); the reference alone: face 15-18 (4); both: 9-14; neither: 19
    assert (c["winner"], c["reference"], c["only_winner"], c["only_reference"]) == (0.75, 0.5, 9, 4)
    assert c["p"] == pytest.approx(2 * sum(math.comb(13, k) for k in range(9, 14)) / 2 ** 13)
    swapped = pick.paired_comparison(one_hot_ish(labels, reference_right, rng), one_hot_ish(labels, winner_right, rng),
                                     labels)
    assert (swapped["only_winner"], swapped["only_reference"]) == (4, 9) and swapped["p"] == pytest.approx(c["p"])
    same = pick.paired_comparison(one_hot_ish(labels, winner_right, rng), one_hot_ish(labels, winner_right, rng), labels)
    assert (same["only_winner"], same["only_reference"], same["p"]) == (0, 0, 1.0)


def test_confirm_picks_on_four_fifths_and_scores_both_models_on_the_untouched_fifth(
        tiny_csv, tiny_model_dir, tmp_path, monkeypatch, capsys):
    from ferkit.data import load_dataset
    from ferkit.inference.classifier import FacialExpressionModel

    data = tiny_csv({"Training": 700, "PublicTest": 7}, seed=4)  # 100 faces a class: 10 held out, 2 of them kept back
    monkeypatch.setattr(pick, "CACHE", tmp_path / "cache")
    monkeypatch.setattr("sys.argv", ["pick_ensemble.py", str(tiny_model_dir), "--data", str(data), "--member-ms",
                                     "1", "--budget-ms", "1", "--no-publictest", "--robust-floor", str(tiny_model_dir),
                                     "--confirm", str(tiny_model_dir)])
    pick.main()
    out = capsys.readouterr().out

    _, held = load_dataset(data).split("Training").holdout(0.1, 42)
    kept = held.holdout_mask(pick.CONFIRM_FRACTION, pick.CONFIRM_SEED)
    assert kept.sum() == 14 and np.bincount(held.hard_labels[kept]).tolist() == [2] * 7
    model = FacialExpressionModel(tiny_model_dir / "model.onnx")
    right = model.predict_proba(held.images).argmax(1) == held.hard_labels
    search, confirm = right[~kept].mean(), right[kept].mean()
    assert "--confirm: picking on 56 holdout faces; 14 kept back untouched" in out
    assert "on the Training holdout (56 faces):" in out
    assert f"holdout {search:.2%}, PublicTest not scored" in out.splitlines()[-1]  # ranked on the four fifths only
    assert (f"confirmation on the 14 holdout faces the pick never saw: winner {confirm:.2%}, {tiny_model_dir} "
            f"{confirm:.2%}; only the winner right on 0, only {tiny_model_dir} on 0 (sign test p = 1.000): "
            f"the winner does not beat {tiny_model_dir}") in out
    floors = [(model.predict_proba(pick.degraded_faces(held.images[~kept], c)).argmax(1) == held.hard_labels[~kept])
              .mean() for c in pick.ROBUST_CONDITIONS]
    assert f"on the holdout): 24 px {floors[0]:.2%}, blur s1.5 {floors[1]:.2%}" in out  # floors: the four fifths too
    # the cache keeps the whole holdout (a later run without --confirm reads the same files)
    assert {np.load(f).shape for f in (tmp_path / "cache").iterdir()} == {(4, 70, 7)}


def test_confirm_scores_the_winners_int8_graph_when_the_pick_builds_them(tiny_csv, tiny_model_dir, tmp_path,
                                                                        monkeypatch, capsys):
    import shutil

    import ferkit.training.quantize as quantize

    data = tiny_csv({"Training": 700, "PublicTest": 7}, seed=4)
    monkeypatch.setattr(pick, "CACHE", tmp_path / "cache")
    monkeypatch.setattr(pick, "INT8_DIR", tmp_path / "int8")
    (tmp_path / "int8").mkdir()
    monkeypatch.setattr(pick, "time_per_face", lambda model, batch, repeats: 0.5)
    monkeypatch.setattr(quantize, "quantize_onnx", lambda source, out, faces, member_views: Path(shutil.copy(source, out)))
    opened = []

    class Recording(pick.FacialExpressionModel):
        def __init__(self, path, *args, **kwargs):
            opened.append(Path(path))
            super().__init__(path, *args, **kwargs)

    monkeypatch.setattr(pick, "FacialExpressionModel", Recording)
    monkeypatch.setattr("sys.argv", ["pick_ensemble.py", str(tiny_model_dir), "--data", str(data), "--member-ms", "1",
                                     "--budget-ms", "1", "--no-publictest", "--int8", "1", "--confirm", str(tiny_model_dir)])
    pick.main()
    out = capsys.readouterr().out
    graph = tmp_path / "int8" / f"{tiny_model_dir.name.split('-')[0]}-v1.onnx"
    assert "confirmation on the 14 holdout faces the pick never saw: winner (its int8 graph) " in out
    assert opened.count(graph) == 2  # built and scored by the int8 ranking, then scored again on the fifth


def test_real_floor_counts_photos_without_a_face_as_wrong_and_filters_the_ranking(tiny_csv, tiny_model_dir, tmp_path,
                                                                                 monkeypatch, capsys):
    from ferkit.data import load_dataset
    from ferkit.inference.classifier import FacialExpressionModel

    data = tiny_csv({"Training": 70, "PublicTest": 9})
    photos = load_dataset(data).split("PublicTest")  # stand-ins for tw-faces: 9 faces found in 12 photos
    asked = []
    monkeypatch.setattr(pick, "tw_faces", lambda shared: asked.append(shared) or (photos.images, photos.hard_labels, 12))
    monkeypatch.setattr(pick, "CACHE", tmp_path / "cache")
    argv = ["pick_ensemble.py", str(tiny_model_dir), "--data", str(data), "--member-ms", "0.25", "--budget-ms", "1",
            "--no-publictest", "--real-floor", str(tiny_model_dir), "--shared", str(tmp_path / "shared")]
    monkeypatch.setattr("sys.argv", argv + ["--real-margin", "5"])
    pick.main()
    out = capsys.readouterr().out
    assert asked == [tmp_path / "shared"]
    right = int((FacialExpressionModel(tiny_model_dir).predict_proba(photos.images).argmax(1) == photos.hard_labels).sum())
    assert (f"real-faces floor: tw-faces {right / 12 - 0.05:.2%} ({tiny_model_dir} less 5 points; "
            "9 of 12 photos with a face)") in out
    picked = out.splitlines()[-1]
    views = int(picked.split(" with ")[1].split(" view")[0])
    tw = pick.member_views(tiny_model_dir / "model.onnx", photos.images, "check")[:views].mean(0).argmax(1)
    assert f", tw-faces {(tw == photos.hard_labels).sum() / 12:.2%}, PublicTest not scored" in picked
    assert any(path.name.split("-")[-2] == "tw" for path in (tmp_path / "cache").iterdir())  # tw-<crc32>.npy

    monkeypatch.setattr("sys.argv", argv + ["--real-margin", "-101"])  # a floor over 100%: nothing is ranked
    with pytest.raises(SystemExit, match="no mix fits the budget and the floors"):
        pick.main()


@pytest.mark.shared
def test_tw_faces_crops_are_what_the_pipeline_classifies(pipeline, shared_dir, monkeypatch):
    from ferkit.inference.images import read_image
    from ferkit.labels import CLASS_NAMES

    bench = sys.modules["bench_real_faces"]
    rows = bench.read_tw(shared_dir)[::150]  # 9 photos across the people and classes
    images = [read_image(row["path"]) for row in rows] + [np.full((240, 200, 3), 90, np.uint8)]  # and one blank
    crops, found = bench.largest_face_crops(pipeline, images)
    faces = [pipeline.analyse(image) for image in images]
    assert found.tolist() == [bool(f) for f in faces] and not found[-1] and found.sum() >= 8
    assert crops.shape == (found.sum(), 48, 48) and crops.dtype == np.uint8
    np.testing.assert_allclose(pipeline.classifier.predict_proba(crops), np.stack([f[0].scores for f in faces if f]),
                               atol=1e-6)

    monkeypatch.setattr(bench, "read_tw", lambda shared: rows)
    tw_crops, labels, total = bench.tw_faces(shared_dir)
    assert total == 9 and np.array_equal(tw_crops, crops)  # the default config is the pipeline fixture's crop
    assert labels.tolist() == [CLASS_NAMES.index(row["emotion"]) for row, ok in zip(rows, found) if ok]
