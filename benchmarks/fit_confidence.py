#!/usr/bin/env python3
"""Fit the calibrated confidence (``localization.calibration``) on the suite's "fit" rows and
check it on the "report" rows it never saw.

Per estimator, a logistic model of P(within 10 cm/5°) over the estimate's cues (inliers, inlier
ratio, covariance sigmas, agreement of two sources), from every localized frame of the fit rows
of benchmarks/suite.py. ``min_confidence`` is the smallest probability (in steps of 0.05) at
which, on the fit rows, at most 0.5 % of the published poses are wrong (> 50 cm or 10°) for
every estimator. Then, on the report rows: the reliability diagram (predicted probability
against the share within 10 cm/5°, per bin; PNG) and per row the published and wrong poses at
``min_confidence``.

    .venv/bin/python benchmarks/fit_confidence.py [--suite runs/bench_suite] [--write]

--write stores the model as marepo_ros/localization/confidence.json (the shipped one) and the
table between the `bench:confidence` markers of docs/results.md.
"""
from __future__ import annotations

import argparse
import csv
import subprocess
import time
from collections import defaultdict
from pathlib import Path

import marepo_ros  # noqa: F401  (before torch: sets how its OpenMP threads wait)
import matplotlib
import numpy as np

from marepo_ros.localization.calibration import (ConfidenceModel, cues, fit_logistic,
                                                 shipped_model_path)

from bench_docs import replace_block, run_stamp  # noqa: E402  (beside this script)

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
WRONG = (50.0, 10.0)    # cm, degrees: a wrong pose (evaluation.metrics)
RIGHT = (10.0, 5.0)     # cm, degrees: the calibrated event
MAX_WRONG_SHARE = 0.005
L2_CHOICES = (0.01, 0.1, 1.0, 10.0, 100.0)


def records(path: Path) -> list[dict]:
    """Localized frames of the suite that the model applies to: a frame without a pose has no
    cues, and a pose its estimator gives confidence 0 (too few inliers, an ambiguous place)
    keeps 0, calibrated or not (``Pipeline.localize``): never published. The estimator's own
    confidence is ``raw_confidence`` (``confidence`` in runs without a shipped model)."""
    out = []
    with open(path) as f:
        for r in csv.DictReader(f):
            t, deg = float(r["translation_cm"]), float(r["rotation_deg"])
            raw = float(r.get("raw_confidence") or r["confidence"])
            if not np.isfinite(t) or raw <= 0:
                continue
            agreement = float(r["agreement"]) if r.get("agreement") else None
            out.append({**r, "x": cues(float(r["inliers"]), float(r["inlier_ratio"]),
                                       float(r.get("sigma_cm") or "inf"), float(r.get("sigma_deg") or "inf"),
                                       agreement, float(r.get("runner_up") or 0.0)),
                        "right": t <= RIGHT[0] and deg <= RIGHT[1],
                        "wrong": t > WRONG[0] or deg > WRONG[1]})
    return out


def choose_l2(recs: list[dict]) -> float:
    """The L2 penalty of ``L2_CHOICES`` with the least leave-one-row-out log loss on the fit
    rows (fit on all rows but one, scored on that one): how strongly to trust cues across
    scenes, chosen without the report rows."""
    rows = sorted({r["row"] for r in recs})
    if len(rows) < 2:
        return 1.0
    losses = []
    for l2 in L2_CHOICES:
        loss = 0.0
        for held in rows:
            train = [r for r in recs if r["row"] != held]
            test = [r for r in recs if r["row"] == held]
            w = fit_logistic(np.array([r["x"] for r in train]),
                             np.array([r["right"] for r in train], float), l2=l2)
            p = np.clip(1 / (1 + np.exp(-np.clip(np.array([r["x"] for r in test]) @ w, -30, 30))),
                        1e-4, 1 - 1e-4)
            y = np.array([r["right"] for r in test], float)
            loss -= float(np.sum(y * np.log(p) + (1 - y) * np.log(1 - p)))
        losses.append(loss)
    return L2_CHOICES[int(np.argmin(losses))]


def probabilities(model: ConfidenceModel, recs: list[dict]) -> np.ndarray:
    w = {k: np.asarray(v) for k, v in model.weights.items()}
    return np.array([1 / (1 + np.exp(-np.clip(r["x"] @ w[r["estimator"]], -30, 30))) for r in recs])


def choose_min_confidence(model: ConfidenceModel, fit: list[dict]) -> float:
    by_estimator = defaultdict(list)
    for r in fit:
        by_estimator[r["estimator"]].append(r)
    for threshold in np.arange(0.05, 1.0, 0.05):
        ok = True
        for recs in by_estimator.values():
            p = probabilities(model, recs)
            published = p >= threshold
            wrong = np.array([r["wrong"] for r in recs]) & published
            if published.sum() and wrong.sum() > MAX_WRONG_SHARE * published.sum():
                ok = False
        if ok:
            return round(float(threshold), 2)
    return 0.95


def reliability(model: ConfidenceModel, recs: list[dict], out: Path) -> list[tuple]:
    """(bin low, bin high, n, mean predicted, observed share) per bin of 0.1; the PNG."""
    p = probabilities(model, recs)
    right = np.array([r["right"] for r in recs])
    bins = []
    for lo in np.arange(0.0, 1.0, 0.1):
        sel = (p >= lo) & (p < lo + 0.1 + (1e-9 if lo >= 0.9 else 0))
        if sel.sum():
            bins.append((lo, lo + 0.1, int(sel.sum()), float(p[sel].mean()), float(right[sel].mean())))
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="grey", lw=1, label="perfect calibration")
    ax.fill_between([0, 1], [-0.1, 0.9], [0.1, 1.1], color="grey", alpha=0.15, label="±10 points")
    xs = [b[3] for b in bins]
    ax.plot(xs, [b[4] for b in bins], "o-", label="report rows (not fitted on)")
    for b in bins:
        ax.annotate(str(b[2]), (b[3], b[4]), textcoords="offset points", xytext=(4, -10), fontsize=7)
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="predicted P(within 10 cm / 5°)",
           ylabel="observed share within 10 cm / 5°", title="Reliability of the confidence")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return bins


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", type=Path, default=REPO / "runs/bench_suite")
    ap.add_argument("--write", action="store_true", help="ship the model and write the docs table")
    args = ap.parse_args()
    t0 = time.time()
    recs = records(args.suite / "per_frame.csv")
    fit = [r for r in recs if r["used_for"] == "fit"]
    report = [r for r in recs if r["used_for"] == "report"]
    fit_rows = sorted({r["row"] for r in fit})
    weights, penalties = {}, {}
    for name in sorted({r["estimator"] for r in fit}):
        mine = [r for r in fit if r["estimator"] == name]
        l2 = choose_l2(mine)
        penalties[name] = l2
        weights[name] = [round(float(v), 5) for v in fit_logistic(
            np.array([r["x"] for r in mine]), np.array([r["right"] for r in mine], float), l2=l2)]
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    model = ConfidenceModel(weights, note=(
        f"fitted by benchmarks/fit_confidence.py on the suite's fit rows ({', '.join(fit_rows)}; "
        f"{len(fit)} localized frames; L2 {penalties}), commit {commit}, {time.strftime('%Y-%m-%d')}"))
    model.min_confidence = choose_min_confidence(model, fit)
    png = (REPO / "docs" if args.write else args.suite) / "reliability.png"
    bins = reliability(model, report, png)
    lines = [f"Fitted on the suite's fit rows ({', '.join(fit_rows)}: {len(fit)} localized frames); "
             f"checked on the report rows ({', '.join(sorted({r['row'] for r in report}))}: "
             f"{len(report)} frames), never fitted on. `min_confidence` = {model.min_confidence} "
             f"(the smallest probability with at most 0.5 % wrong among the fit rows' published poses). "
             f"L2 penalty per estimator, chosen by leave-one-fit-row-out log loss: "
             f"{', '.join(f'`{k}` {v:g}' for k, v in sorted(penalties.items()))}.",
             "", "Reliability on the report rows (bins of predicted probability):", "",
             "| predicted | frames | mean predicted | observed within 10 cm/5° | off by |",
             "|---|---|---|---|---|"]
    lines += [f"| {lo:.1f}–{hi:.1f} | {n} | {mp:.2f} | {obs:.2f} | {100 * (obs - mp):+.0f} points |"
              for lo, hi, n, mp, obs in bins]
    lines += ["", f"Published at `min_confidence` {model.min_confidence}, per report row:", "",
              "| row | estimator | localized | published | wrong published | within 10 cm/5° among published |",
              "|---|---|---|---|---|---|"]
    groups = defaultdict(list)
    for r in report:
        groups[(r["row"], r["estimator"])].append(r)
    for (row, name), rs in sorted(groups.items()):
        p = probabilities(model, rs)
        pub = p >= model.min_confidence
        wrong = int(sum(r["wrong"] for r, k in zip(rs, pub) if k))
        right = float(np.mean([r["right"] for r, k in zip(rs, pub) if k])) if pub.any() else float("nan")
        lines.append(f"| {row} | `{name}` | {len(rs)} | {int(pub.sum())} | {wrong} | {100 * right:.1f} % |")
    lines += ["", "![reliability diagram](reliability.png)", "",
              run_stamp(time.time() - t0)]
    table = "\n".join(lines)
    print(table)
    if args.write:
        model.save(shipped_model_path())
        replace_block(REPO / "docs/results.md", "bench:confidence", table)
        print(f"wrote {shipped_model_path()}")


if __name__ == "__main__":
    main()
