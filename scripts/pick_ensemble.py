"""Pick the `accurate` ensemble's members and test-time views on the Training holdout (issue 13).

    python scripts/pick_ensemble.py members/m1-fast-e66-s42 members/m* runs-gpu/g*/ --data ../shared/data/fer2013/fer2013.csv.gz \
        --budget-ms 9.5

Every subset of the candidates, with 1, 2 or 4 views each (as is; + mirrored; + zoomed and
zoomed-mirrored), equal weights, is scored on the holdout that no member trained on; those whose
batch-1 cost (the members' measured ms per face, times the views) fits the budget are ranked by
holdout accuracy (log-loss breaks ties). With `--fit-weights K`, the K best with two or more
members also get member weights that minimise the holdout log-loss; as those weights are fitted
on the same faces, they are ranked by 5-fold cross-validated accuracy inside the holdout (weights
fitted on four folds, scored on the fifth), which equal weights must beat on the same footing.
With `--int8 K`, the K best are also built as int8 graphs (`ferkit ensemble --int8`'s quantizer, ranges from
Training faces outside the holdout) and scored on the holdout; each gets an estimate = its ranking accuracy +
(int8 holdout - float holdout of the same mix), and the list is re-ranked by it (runs/int8-accurate-plan.md).
With `--robust-floor MODEL`, a mix is only ranked if it is no worse than MODEL (e.g. the shipped `accurate`) on
the holdout's faces from 24 px and blurred (bench/bench_robustness.py's conditions): in session 19 the best clean
mix read 37.6% on 16 px faces and 36.1% blurred, far under `fast` (runs/s19-accurate-revert-plan.md).
With `--real-floor MODEL`, a mix must also score no worse than MODEL (less `--real-margin` points) on tw-faces, the
real photos (bench/bench_real_faces.py's largest face per photo, yunet+align; a photo without a face counts as
wrong), and the list shows each mix's tw-faces figure: in session 26 the members trained with `--augment real` read
two points lower there than the others, with no sign of it on the holdout.
With `--confirm MODEL`, everything above sees only four fifths of the holdout (a seeded, class-stratified
split); the fifth it never saw then scores the winner and MODEL (e.g. the shipped `accurate`) face by face,
with the faces only one of them gets right and a sign test on those: in sessions 19 and 24 the best of
~200,000 mixes scored on all 2,872 faces landed 1-2 points under its estimate on PublicTest (runs/m18-plan.md).
With `--per-member-views TOP`, the subsets of the TOP best mixes are also scored with each member's own number of
views (1, 2 or 4 each, within the budget; `ferkit ensemble --views 4 1 2 ...` builds them): the `medium` members
gain 0.4-0.8 points from four views where the `vgg` ones gain nothing from a second (runs/s42-plan.md).
Only the winner is then scored on PublicTest, once (`--no-publictest`: not at all, for exploratory
runs that will decide nothing).
Members' probabilities per view are cached in runs/pick-cache/ (keyed by the ONNX file's size and
time), so re-ranking with another budget takes seconds.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as bench/bench_models.py: fair ONNX Runtime timings

import numpy as np

from ferkit.config import default_shared_dir
from ferkit.data import load_dataset
from ferkit.inference.classifier import FacialExpressionModel, tta_views
from ferkit.training.ensemble import member_onnx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from bench_models import count_macs, time_per_face  # noqa: E402  (the model table's own counts and timing)
from bench_robustness import CONDITIONS  # noqa: E402  (the robustness table's own degradations)
from bench_real_faces import tw_faces  # noqa: E402  (the real-faces table's own detect-and-crop)

VIEWS = (1, 2, 4)
ROBUST_CONDITIONS = ("24 px", "blur s1.5")  # the columns real footage stresses most
CACHE = Path("runs/pick-cache")
CONFIRM_FRACTION, CONFIRM_SEED = 0.2, 25  # the untouched fifth of the holdout that `--confirm` keeps back
INT8_DIR = Path("runs/pick-int8")


def single_network(onnx_path: Path) -> Path:
    """The path back if it is one network; a graph with views inside (today's `fast`, any ensemble)
    would get its views twice here, so it is refused."""
    if FacialExpressionModel(onnx_path).views_in_graph > 1:
        raise SystemExit(f"{onnx_path.parent}: has test-time views inside its graph; pick among single networks "
                         "(the network behind `fast` is members/m1-fast-e66-s42)")
    return onnx_path


def member_views(onnx_path: Path, faces: np.ndarray, tag: str) -> np.ndarray:
    """(4, N, 7) uncalibrated probabilities of one member on the four views of `faces`."""
    stat = onnx_path.stat()
    key = CACHE / f"{onnx_path.parent.name}-{stat.st_size}-{int(stat.st_mtime)}-{tag}.npy"
    if key.exists():
        return np.load(key)
    model = FacialExpressionModel(onnx_path)
    batch = faces[..., None].astype(np.float32)
    probs = np.concatenate([model._run(tta_views(batch[i:i + 256])).reshape(4, -1, 7)
                            for i in range(0, len(batch), 256)], axis=1)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(key, probs)
    return probs


def scaled_costs(paths: list[Path], member_ms: float) -> list[float]:
    """ms per view of each candidate: `member_ms` for the fewest multiply-adds, the others in proportion
    (a `medium` member costs about 2.3 `compact` ones)."""
    macs = [count_macs(p.parent / "model.json")[1] for p in paths]
    return [member_ms * m / min(macs) for m in macs]


def counts_of(subset: tuple[int, ...], v: int | tuple[int, ...]) -> tuple[int, ...]:
    """Each member's number of views: `v` for all, or `v` itself when it gives one count per member."""
    return v if isinstance(v, tuple) else (v,) * len(subset)


def views_text(v: int | tuple[int, ...]) -> str:
    return f"views {'+'.join(map(str, v))}" if isinstance(v, tuple) else f"{v} view(s)"


def stacked(views, subset: tuple[int, ...], v: int | tuple[int, ...]) -> np.ndarray:
    """(members, N, 7): each member of `subset` averaged over its first `v` views (or its own count of `v`)."""
    return np.stack([views[i][:c].mean(0) for i, c in zip(subset, counts_of(subset, v))])


def mix(views, subset: tuple[int, ...], v: int | tuple[int, ...], weights: np.ndarray) -> np.ndarray:
    """(N, 7): the weighted sum of the subset's members, each over its first `v` views."""
    return np.tensordot(weights, stacked(views, subset, v), 1)


def per_member_mixes(ranked: list, costs: list[float], budget: float, top: int) -> list:
    """Every per-member view assignment (1, 2 or 4 each, not all alike) of the subsets of the `top` best rows, within
    `budget` ms: (subset, counts, cost)."""
    subsets = list(dict.fromkeys(row[2] for row in ranked[:top]))
    found = []
    for subset in subsets:
        for counts in itertools.product(VIEWS, repeat=len(subset)):
            cost = sum(c * costs[i] for i, c in zip(subset, counts))
            if cost <= budget and len(set(counts)) > 1:
                found.append((subset, counts, cost))
    return found


def equal_if_none(weights: np.ndarray | None, members: int) -> np.ndarray:
    return np.full(members, 1 / members) if weights is None else weights


def score(probs: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(accuracy, mean log-loss)."""
    accuracy = float((probs.argmax(1) == labels).mean())
    return accuracy, float(-np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-7, 1)).mean())


def fit_weights(member_probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Non-negative weights summing to 1 that minimise the mean log-loss of sum_i w_i p_i."""
    from scipy.optimize import minimize

    picked = member_probs[:, np.arange(len(labels)), labels]  # (M, N): each member's p(true class)

    def loss(theta):
        w = np.exp(theta - theta.max())
        w /= w.sum()
        mix = np.clip(w @ picked, 1e-7, None)
        # gradient through the softmax parametrisation: d/dtheta_j = w_j * (g_j - w.g)
        g = -(picked / mix).mean(1)
        return float(-np.log(mix).mean()), w * (g - w @ g)

    theta = minimize(loss, np.zeros(len(member_probs)), jac=True, method="L-BFGS-B").x
    w = np.exp(theta - theta.max())
    return w / w.sum()


def cross_validated_accuracy(member_probs: np.ndarray, labels: np.ndarray, folds: int = 5) -> float:
    """Accuracy of fitted weights on faces they were not fitted on (seeded folds of the holdout)."""
    order = np.random.default_rng(0).permutation(len(labels))
    correct = 0
    for part in np.array_split(order, folds):
        rest = np.setdiff1d(order, part)
        w = fit_weights(member_probs[:, rest], labels[rest])
        correct += int((np.tensordot(w, member_probs[:, part], 1).argmax(1) == labels[part]).sum())
    return correct / len(labels)


def degraded_faces(faces: np.ndarray, condition: str) -> np.ndarray:
    return np.stack([CONDITIONS[condition](face) for face in faces])


@dataclass
class Floor:
    """What a mix must score on one set of faces: `accuracy` (the floor model's), each candidate's (4, N, 7)
    probabilities on the faces, their labels, and `total` >= N photos (those without a face count as wrong)."""
    accuracy: float
    views: list
    labels: np.ndarray
    total: int | None = None

    def scored(self, subset: tuple[int, ...], v: int, weights: np.ndarray) -> float:
        right = int((mix(self.views, subset, v, weights).argmax(1) == self.labels).sum())
        return right / (self.total or len(self.labels))


def meets_floors(floors: dict, subset: tuple[int, ...], v: int, weights: np.ndarray) -> bool:
    """Whether the mix scores at least each floor (a name -> Floor map) on that floor's faces."""
    return all(floor.scored(subset, v, weights) >= floor.accuracy for floor in floors.values())


def robust_floors(model: str, paths: list[Path], held, rows: np.ndarray | None = None) -> dict:
    """For each of ROBUST_CONDITIONS: `model`'s accuracy under it, and every candidate's views, on the holdout's
    `rows` (a bool mask; all by default). The cache holds the whole holdout's views, whatever `rows`."""
    rows = np.ones(len(held), bool) if rows is None else rows
    floor_model = FacialExpressionModel.load(model)
    floors = {}
    for condition in ROBUST_CONDITIONS:
        faces = degraded_faces(held.images, condition)
        right = floor_model.predict_proba(faces[rows]).argmax(1) == held.hard_labels[rows]
        tag = "holdout-" + condition.replace(" ", "").replace(".", "")
        floors[condition] = Floor(float(right.mean()), [member_views(p, faces, tag)[:, rows] for p in paths],
                                  held.hard_labels[rows])
    return floors


def real_floor(model: str, paths: list[Path], shared: Path, margin: float = 0.0) -> Floor:
    """tw-faces (bench/bench_real_faces.py's largest face per photo, yunet+align): `model`'s accuracy there
    less `margin`, and every candidate's views on the crops (cached under a checksum of the crops)."""
    crops, labels, total = tw_faces(shared)
    right = int((FacialExpressionModel.load(model).predict_proba(crops).argmax(1) == labels).sum())
    tag = f"tw-{zlib.crc32(crops.tobytes()):08x}"
    return Floor(right / total - margin, [member_views(p, crops, tag) for p in paths], labels, total)


def int8_path(names: list[str], subset: tuple[int, ...], v: int, weights: np.ndarray | None) -> Path:
    """Where `int8_ranking` writes the int8 graph of a mix (the confirmation reads it back)."""
    counts = "".join(map(str, v)) if isinstance(v, tuple) else str(v)  # one digit per member, or the one count
    slug = "+".join(names[i].split("-")[0] for i in subset) + f"-v{counts}" + ("" if weights is None else "-fitted")
    return INT8_DIR / f"{slug}.onnx"


def paired_comparison(winner: np.ndarray, reference: np.ndarray, labels: np.ndarray) -> dict:
    """Two models' (N, 7) probabilities on the same faces: each one's accuracy, the faces only one gets right,
    and the two-sided sign-test p-value on those (the faces both get right or wrong say nothing about which
    is better)."""
    from scipy.stats import binomtest

    winner_right, reference_right = winner.argmax(1) == labels, reference.argmax(1) == labels
    only_winner = int((winner_right & ~reference_right).sum())
    only_reference = int((reference_right & ~winner_right).sum())
    discordant = only_winner + only_reference
    return {"winner": float(winner_right.mean()), "reference": float(reference_right.mean()),
            "only_winner": only_winner, "only_reference": only_reference,
            "p": binomtest(only_winner, discordant).pvalue if discordant else 1.0}


def int8_ranking(rows: list, paths: list[Path], names: list[str], held, held_views: list[np.ndarray],
                 data: str) -> list:
    """`rows` re-ranked by ranking accuracy + the int8 graph's holdout change against the same float mix."""
    from ferkit.training.ensemble import build_int8_ensemble
    from ferkit.training.quantize import calibration_faces

    faces = calibration_faces(data)
    estimated = []
    print("\nint8 graphs (holdout; estimate = ranking accuracy + int8 - float):")
    for accuracy, neg_loss, subset, v, cost, w in rows:
        weights = equal_if_none(w, len(subset))
        float_acc, _ = score(mix(held_views, subset, v, weights), held.hard_labels)
        graph = build_int8_ensemble([paths[i] for i in subset], int8_path(names, subset, v, w), faces, list(weights),
                                    list(v) if isinstance(v, tuple) else v)
        model = FacialExpressionModel(graph)
        int8_acc = float((model.predict_proba(held.images).argmax(1) == held.hard_labels).mean())
        ms = time_per_face(model, batch=1, repeats=200)
        estimate = accuracy + int8_acc - float_acc
        print(f"  {estimate:.2%} = {accuracy:.2%} + ({int8_acc:.2%} - {float_acc:.2%})  {ms:5.2f} ms measured  "
              f"{views_text(v)}  " + " + ".join(names[i] for i in subset) + f"  -> {graph}")
        estimated.append((estimate, neg_loss, subset, v, ms, w))
    return sorted(estimated, key=lambda r: r[:2], reverse=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("candidates", nargs="+", help="bundled model names or run folders")
    parser.add_argument("--data", required=True)
    parser.add_argument("--budget-ms", type=float, default=9.5, help="batch-1 ms per face the ensemble may cost")
    parser.add_argument("--member-ms", type=float, default=None,
                        help="cost in ms of one view of the cheapest candidate instead of timing each member "
                             "(e.g. its int8 cost, or when the machine is busy and timings mislead); wider "
                             "candidates are scaled by their multiply-adds")
    parser.add_argument("--max-members", type=int, default=6)
    parser.add_argument("--show", type=int, default=12, help="how many of the best to list")
    parser.add_argument("--fit-weights", type=int, default=0, metavar="K",
                        help="also fit member weights for the K best multi-member ensembles")
    parser.add_argument("--int8", type=int, default=0, metavar="K",
                        help="build the K best as int8 graphs, score them on the holdout and re-rank by the estimate")
    parser.add_argument("--robust-floor", metavar="MODEL",
                        help="rank only mixes no worse than MODEL on the holdout's " + " and ".join(ROBUST_CONDITIONS)
                        + " faces (bench/bench_robustness.py)")
    parser.add_argument("--real-floor", metavar="MODEL",
                        help="rank only mixes no worse than MODEL on tw-faces (real photos; bench/bench_real_faces.py)")
    parser.add_argument("--real-margin", type=float, default=0.0, metavar="POINTS",
                        help="let a mix fall this many points under --real-floor's model on tw-faces")
    parser.add_argument("--shared", type=Path, default=default_shared_dir(), help="the shared data folder (tw-faces)")
    parser.add_argument("--confirm", metavar="MODEL",
                        help="pick on four fifths of the holdout, then score the winner and MODEL on the untouched fifth")
    parser.add_argument("--per-member-views", type=int, default=0, metavar="TOP",
                        help="also score the subsets of the TOP best mixes with each member's own view count")
    parser.add_argument("--no-publictest", action="store_true",
                        help="do not score the winner on PublicTest (exploration: keep the reported split unseen)")
    args = parser.parse_args()

    dataset = load_dataset(args.data)
    _, held = dataset.split("Training").holdout(0.1, 42)
    test = None if args.no_publictest else dataset.split("PublicTest")
    paths = [single_network(member_onnx(c)) for c in args.candidates]
    names = [p.parent.name for p in paths]
    costs = (scaled_costs(paths, args.member_ms) if args.member_ms is not None
             else [time_per_face(FacialExpressionModel(p), batch=1, repeats=200) for p in paths])
    held_views = [member_views(p, held.images, "holdout") for p in paths]  # cached on the whole holdout
    # the fifth `--confirm` keeps back (none without it); caches and floors stay keyed on the whole holdout
    kept = held.holdout_mask(CONFIRM_FRACTION, CONFIRM_SEED) if args.confirm else np.zeros(len(held), bool)
    print("candidate                  ms/face  holdout: plain  2 views  4 views")
    for name, cost, views in zip(names, costs, held_views):
        accs = [score(views[:v].mean(0), held.hard_labels)[0] for v in VIEWS]
        print(f"{name:26s} {cost:7.2f}  " + "  ".join(f"{a:13.2%}" for a in accs))
    floors = robust_floors(args.robust_floor, paths, held, ~kept) if args.robust_floor else {}
    if args.real_floor:
        floors["tw-faces"] = real_floor(args.real_floor, paths, args.shared, args.real_margin / 100)
    if args.confirm:  # the search from here on sees only the rest
        confirm, confirm_views = held.select(kept), [views[:, kept] for views in held_views]
        held, held_views = held.select(~kept), [views[:, ~kept] for views in held_views]
        print(f"--confirm: picking on {len(held)} holdout faces; {len(confirm)} kept back untouched")
    if args.robust_floor:
        print(f"robustness floors ({args.robust_floor} on the holdout): "
              + ", ".join(f"{c} {floors[c].accuracy:.2%}" for c in ROBUST_CONDITIONS))
    real = floors.get("tw-faces")
    if real:
        print(f"real-faces floor: tw-faces {real.accuracy:.2%} ({args.real_floor}"
              + (f" less {args.real_margin:g} points" if args.real_margin else "")
              + f"; {len(real.labels)} of {real.total} photos with a face)")

    def robust(subset, v, weights):
        return meets_floors(floors, subset, v, equal_if_none(weights, len(subset)))

    def on_tw(subset, v, weights, sep="  ") -> str:
        return f"{sep}tw-faces {real.scored(subset, v, equal_if_none(weights, len(subset))):.2%}" if real else ""

    ranked = []
    for size in range(1, min(args.max_members, len(paths)) + 1):
        for subset in itertools.combinations(range(len(paths)), size):
            for v in VIEWS:
                cost = v * sum(costs[i] for i in subset)
                if cost > args.budget_ms or not robust(subset, v, None):
                    continue
                probs = stacked(held_views, subset, v).mean(0)
                accuracy, loss = score(probs, held.hard_labels)
                ranked.append((accuracy, -loss, subset, v, cost, None))
    ranked.sort(key=lambda r: r[:2], reverse=True)
    if args.per_member_views:
        scored = []
        for subset, counts, cost in per_member_mixes(ranked, costs, args.budget_ms, args.per_member_views):
            accuracy, loss = score(stacked(held_views, subset, counts).mean(0), held.hard_labels)
            scored.append((accuracy, -loss, subset, counts, cost, None))
        scored.sort(key=lambda r: r[:2], reverse=True)
        wanted = max(args.show, args.fit_weights, args.int8, 1)
        passing = []  # the floors are checked from the best down, until enough pass
        for row in scored:
            if robust(row[2], row[3], None):
                passing.append(row)
                if len(passing) == wanted:
                    break
        print(f"(per-member views: {len(scored)} mixes from the subsets of the best {args.per_member_views})")
        ranked = sorted(ranked + passing, key=lambda r: r[:2], reverse=True)
    if args.fit_weights:
        fitted = []
        for accuracy, _, subset, v, cost, _ in [r for r in ranked if len(r[2]) > 1][:args.fit_weights]:
            stack = stacked(held_views, subset, v)
            w = fit_weights(stack, held.hard_labels)
            if not robust(subset, v, w):
                continue
            _, loss = score(np.tensordot(w, stack, 1), held.hard_labels)
            fitted.append((cross_validated_accuracy(stack, held.hard_labels), -loss, subset, v, cost, w))
        ranked = sorted(ranked + fitted, key=lambda r: r[:2], reverse=True)
        print("(fitted weights: accuracy is 5-fold cross-validated inside the holdout)")
    print(f"\nbest within {args.budget_ms} ms per face, on the Training holdout ({len(held)} faces):")
    for accuracy, neg_loss, subset, v, cost, w in ranked[:args.show]:
        weights = "" if w is None else "  weights " + ",".join(f"{x:.3f}" for x in w)
        print(f"  {accuracy:.2%}  log-loss {-neg_loss:.4f}  {views_text(v)}  {cost:5.2f} ms  "
              + " + ".join(names[i] for i in subset) + weights + on_tw(subset, v, w))
    if not ranked:
        raise SystemExit("no mix fits the budget" + (" and the floors" if floors else ""))
    if args.int8:
        ranked = int8_ranking(ranked[:args.int8], paths, names, held, held_views, args.data)
    accuracy, _, subset, v, cost, w = ranked[0]
    if args.confirm:
        graph = int8_path(names, subset, v, w) if args.int8 else None
        winner = (FacialExpressionModel(graph).predict_proba(confirm.images) if graph
                  else mix(confirm_views, subset, v, equal_if_none(w, len(subset))))
        reference = FacialExpressionModel.load(args.confirm).predict_proba(confirm.images)
        c = paired_comparison(winner, reference, confirm.hard_labels)
        verdict = "beats" if c["winner"] > c["reference"] else "does not beat"
        print(f"\nconfirmation on the {len(confirm)} holdout faces the pick never saw: winner"
              f"{' (its int8 graph)' if graph else ''} {c['winner']:.2%}, {args.confirm} {c['reference']:.2%}; "
              f"only the winner right on {c['only_winner']}, only {args.confirm} on {c['only_reference']} "
              f"(sign test p = {c['p']:.3f}): the winner {verdict} {args.confirm}")
    w = equal_if_none(w, len(subset))
    if args.no_publictest:
        public = "PublicTest not scored (--no-publictest)"
    else:
        probs = mix({i: member_views(paths[i], test.images, "publictest") for i in subset}, subset, v, w)
        public = f"PublicTest {score(probs, test.hard_labels)[0]:.2%} (scored once, after picking)"
    print(f"\npicked: {' '.join(args.candidates[i] for i in subset)} with {views_text(v)}, weights "
          f"{','.join(f'{x:.3f}' for x in w)}, {cost:.2f} ms per face; holdout {accuracy:.2%}{on_tw(subset, v, w, ', ')}, "
          f"{public}")


if __name__ == "__main__":
    main()
