#!/usr/bin/env python3
"""Check the cascade's ``CERTAIN_PROBABILITY`` and fit its fallback ``CERTAIN_INLIERS`` (no
calibrated model) on the suite's "fit" rows, and show what they do on the "report" rows.

With the shipped calibrated model, a points pose whose probability (per_frame.csv ``confidence``
of `points`) is at least ``CERTAIN_PROBABILITY`` and that has no rival is taken without the
head: the script prints the most probable unambiguous points pose outside 10 cm / 5° on the fit
rows (the threshold must lie above it) and, per row, the share of frames that would consult the
head and the poses outside 10 cm/5° among those that would not.

A points pose with at least T PnP inliers and no rival (``points``' verification: a rival
with ``AMBIGUOUS_SHARE`` of its inliers makes it ambiguous, and the cascade asks the head) is
taken without consulting the head. T is the smallest count such that, on the fit rows, no
unambiguous points pose with T or more inliers is outside 10 cm / 5° (the trust issue's
"correct"), times a margin of 1.5; the table lists, per row and
for a few T, the share of frames that skip the head and the poses among them outside 10 cm/5°
and wrong (> 50 cm or 10°).

    .venv/bin/python benchmarks/fit_cascade.py [--suite runs/bench_suite] [--margin 1.5]

Reads OUT/per_frame.csv of benchmarks/suite.py (estimator `points`).
"""
from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

import numpy as np

from marepo_ros.localization.cascade import CERTAIN_PROBABILITY
from marepo_ros.localization.points import AMBIGUOUS_SHARE

REPO = Path(__file__).resolve().parents[1]


def load(path: Path) -> dict[tuple[str, str], dict[str, np.ndarray]]:
    """(row, used_for) -> arrays of inliers, translation_cm, rotation_deg of points' frames
    (inliers 0 for an ambiguous one: the cascade never takes it as it is)."""
    rows: dict[tuple[str, str], dict[str, list]] = defaultdict(lambda: defaultdict(list))
    with open(path) as f:
        for r in csv.DictReader(f):
            if r["estimator"] != "points":
                continue
            d = rows[(r["row"], r["used_for"])]
            ambiguous = float(r.get("runner_up") or 0.0) >= AMBIGUOUS_SHARE
            d["inliers"].append(0.0 if ambiguous else float(r["inliers"]))
            d["probability"].append(0.0 if ambiguous else float(r["confidence"]))
            for k in ("translation_cm", "rotation_deg"):
                d[k].append(float(r[k]))
    return {key: {k: np.array(v) for k, v in d.items()} for key, d in rows.items()}


def fit_threshold(rows: dict, margin: float) -> tuple[int, int]:
    """(T, the largest inlier count of a fit-row pose outside 10 cm/5°)."""
    worst = 0
    for (_, used_for), d in rows.items():
        if used_for != "fit":
            continue
        bad = (d["translation_cm"] > 10) | (d["rotation_deg"] > 5)
        if bad.any():
            worst = max(worst, int(d["inliers"][bad].max()))
    return int(np.ceil((worst + 1) * margin)), worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", type=Path, default=REPO / "runs/bench_suite")
    ap.add_argument("--margin", type=float, default=1.5)
    args = ap.parse_args()
    rows = load(args.suite / "per_frame.csv")
    T, worst = fit_threshold(rows, args.margin)
    print(f"fit rows: {', '.join(r for r, u in rows if u == 'fit')}; the most inliers of a points "
          f"pose outside 10 cm/5° there: {worst}; CERTAIN_INLIERS = ceil(({worst} + 1) x "
          f"{args.margin:g}) = {T}\n")
    worst_p = max((float(d["probability"][(d["translation_cm"] > 10) | (d["rotation_deg"] > 5)].max(initial=0))
                   for (_, u), d in rows.items() if u == "fit"), default=0.0)
    print(f"the most probable unambiguous points pose outside 10 cm/5° on the fit rows: P {worst_p:.3f}; "
          f"CERTAIN_PROBABILITY {CERTAIN_PROBABILITY}\n")
    print("| row | used for | frames consulting the head | skipping it and outside 10cm/5° |")
    print("|---|---|---|---|")
    for (row, used_for), d in sorted(rows.items(), key=lambda kv: kv[0][1]):
        sure = d["probability"] >= CERTAIN_PROBABILITY
        bad = sure & ((d["translation_cm"] > 10) | (d["rotation_deg"] > 5))
        print(f"| {row} | {used_for} | {100 * (1 - sure.mean()):.1f} % | {bad.sum()} |")
    print("\nWithout a calibrated model (inlier counts):\n")
    print("| row | used for | T | frames skipping the head | of them outside 10cm/5° | of them wrong |")
    print("|---|---|---|---|---|---|")
    for (row, used_for), d in sorted(rows.items(), key=lambda kv: kv[0][1]):
        for t in sorted({T, 50, 100, 150}):
            sure = d["inliers"] >= t
            bad = sure & ((d["translation_cm"] > 10) | (d["rotation_deg"] > 5))
            wrong = sure & ((d["translation_cm"] > 50) | (d["rotation_deg"] > 10))
            print(f"| {row} | {used_for} | {t} | {100 * sure.mean():.1f} % ({sure.sum()}/{len(sure)}) "
                  f"| {bad.sum()} | {wrong.sum()} |")


if __name__ == "__main__":
    main()
