"""Speed of ``smaformer evaluate`` versus a plain medpy loop on the same synthetic files.

Writes synthetic CT-like label maps (ellipsoid "organs" 1..8, predictions = perturbed ground
truth with occasional missed or spurious organs) as NIfTI, then times

* ``evaluate_folders`` - the function behind ``smaformer evaluate`` (crop + parallel cases),
  with the default number of processes and with one process, and
* a naive loop: read both files, then medpy ``dc`` / ``hd95`` on full volumes per case and
  label with the same (1, 0) / (0, 0) rule,

prints the times and ratios, and checks that all values agree to 1e-6.

    python benchmarks/evaluate_speed.py --cases 8 --shape 100 512 512
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

LABELS = list(range(1, 9))


def _ellipsoid(shape: tuple[int, int, int], center: np.ndarray,
               radii: np.ndarray) -> tuple[tuple[slice, ...], np.ndarray]:
    """Boolean ellipsoid inside its own bounding box (clipped to ``shape``), and that box."""
    lo = np.maximum(np.floor(center - radii).astype(int), 0)
    hi = np.minimum(np.ceil(center + radii).astype(int) + 1, shape)
    grids = np.ogrid[tuple(slice(a, b) for a, b in zip(lo, hi))]
    dist = sum(((g - c) / r) ** 2 for g, c, r in zip(grids, center, radii))
    return tuple(slice(a, b) for a, b in zip(lo, hi)), dist <= 1.0


def synthetic_case(shape: tuple[int, int, int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Ground truth and prediction ``(z, y, x)`` uint8 label maps with organs 1..8."""
    gt = np.zeros(shape, dtype=np.uint8)
    pred = np.zeros(shape, dtype=np.uint8)
    extent = np.asarray(shape, dtype=float)
    for label in LABELS:
        # Organ sizes from aorta-like to liver-like, as fractions of the volume.
        radii = extent * rng.uniform([0.08, 0.03, 0.03], [0.35, 0.15, 0.15])
        center = extent * rng.uniform(0.2, 0.8, size=3)
        box, mask = _ellipsoid(shape, center, radii)
        gt[box][mask] = label
        if rng.random() < 0.08:
            continue  # missed organ -> (0, 0)
        jitter = extent * rng.normal(0.0, 0.01, size=3)
        box, mask = _ellipsoid(shape, center + jitter, radii * rng.uniform(0.85, 1.15, size=3))
        pred[box][mask] = label
        if rng.random() < 0.5:  # a small false-positive island far away
            box, mask = _ellipsoid(shape, extent * rng.uniform(0.1, 0.9, size=3), extent * 0.02 + 1)
            pred[box][mask] = label
    return gt, pred


def write_cases(root: Path, n_cases: int, shape: tuple[int, int, int], seed: int) -> tuple[Path, Path]:
    import SimpleITK as sitk

    rng = np.random.default_rng(seed)
    gt_dir, pred_dir = root / "gt", root / "pred"
    gt_dir.mkdir()
    pred_dir.mkdir()
    for i in range(n_cases):
        gt, pred = synthetic_case(shape, rng)
        for folder, array in ((gt_dir, gt), (pred_dir, pred)):
            image = sitk.GetImageFromArray(array)
            image.SetSpacing((0.76, 0.76, 3.0))  # x, y, z as in Synapse
            sitk.WriteImage(image, str(folder / f"case{i:04d}.nii.gz"))
    return gt_dir, pred_dir


def medpy_loop(pred_dir: Path, gt_dir: Path) -> dict[str, dict[int, tuple[float, float]]]:
    """The straightforward protocol: full volumes, medpy per label (HD95 in voxels)."""
    import SimpleITK as sitk
    from medpy.metric import binary

    results: dict[str, dict[int, tuple[float, float]]] = {}
    for pred_path in sorted(pred_dir.glob("*.nii.gz")):
        pred = sitk.GetArrayFromImage(sitk.ReadImage(str(pred_path)))
        gt = sitk.GetArrayFromImage(sitk.ReadImage(str(gt_dir / pred_path.name)))
        case = pred_path.name[: -len(".nii.gz")]
        results[case] = {}
        for label in LABELS:
            p, g = pred == label, gt == label
            if p.sum() > 0 and g.sum() > 0:
                results[case][label] = (binary.dc(p, g), binary.hd95(p, g))
            elif p.sum() > 0:
                results[case][label] = (1.0, 0.0)
            else:
                results[case][label] = (0.0, 0.0)
    return results


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=8)
    parser.add_argument("--shape", type=int, nargs=3, default=(100, 512, 512), metavar=("Z", "Y", "X"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from nnunetv2_smaformer.evaluation.evaluate import default_jobs, evaluate_folders

    shape = tuple(args.shape)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        gt_dir, pred_dir = write_cases(Path(tmp), args.cases, shape, args.seed)
        print(f"wrote {args.cases} cases of {shape} (z, y, x) in {time.perf_counter() - t0:.1f} s")

        jobs = default_jobs(args.cases)
        t0 = time.perf_counter()
        fast = evaluate_folders(pred_dir, gt_dir, labels=LABELS, jobs=jobs, progress=False)
        t_fast = time.perf_counter() - t0
        t0 = time.perf_counter()
        evaluate_folders(pred_dir, gt_dir, labels=LABELS, jobs=1, progress=False)
        t_single = time.perf_counter() - t0
        t0 = time.perf_counter()
        slow = medpy_loop(pred_dir, gt_dir)
        t_medpy = time.perf_counter() - t0

    worst = max(
        max(abs(fast.per_case[c][l][0] - slow[c][l][0]), abs(fast.per_case[c][l][1] - slow[c][l][1]))
        for c in slow
        for l in LABELS
    )
    print(f"medpy loop (1 process):        {t_medpy:8.2f} s")
    print(f"smaformer evaluate ({jobs} proc.):  {t_fast:8.2f} s   speed-up {t_medpy / t_fast:6.1f}x")
    print(f"smaformer evaluate (1 proc.):  {t_single:8.2f} s   speed-up {t_medpy / t_single:6.1f}x")
    print(f"largest difference to medpy: {worst:.3g}  mean DSC {fast.mean[0]:.4f}  mean HD95 {fast.mean[1]:.3f}")
    if worst > 1e-6:
        print("ERROR: values differ from medpy", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
