#!/usr/bin/env python3
"""The pose regressors side by side, one run, one table (issue 14): marepo and GRLoc's grr (both
translation forms), each with and without GeLoc3r's GCR, alone, ``+refine`` (reprojection
refinement on the scene coordinates that agree) and ``+kf`` (the nearest keyframes' matches),
against ``ransac`` on the same scene coordinates.

- held-out rendered scenes: the regressor validation views (seeds never used in training,
  head-like corrupted scene coordinates, ±180° map jitter); no images, so no ``+kf``;
- redkitchen: the scene coordinates of the default map's head for every query
  (``runs/bench_redkitchen/redkitchen.map``, written by ``benchmarks/redkitchen.py``).

    .venv/bin/python benchmarks/regressors.py [--runs runs/regressor] [--map PATH] [--every 2]

Models: ``--runs`` holds the ablation (``ab-<variant>-s<seed>/model.pt``, variants marepo,
marepo-gcr, grr, grr-gcr; ``scripts/train_regressor.py`` writes them); every seed found counts
(errors pooled; the median of each seed shown too); ``long*-<variant>/model.pt``: longer runs,
one row each, named by their steps in all. Without them the shipped marepo and grr
are compared. ms/frame: the estimator's wall time on this machine's cores (torch's default
threads, as the node runs); for redkitchen plus the encoder and head (median, measured here). Writes OUT/results.json,
OUT/results.md, OUT/training.png (the long runs' held-out checks against steps) and the
`bench:regressors` table in docs/results.md.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import marepo_ros  # noqa: F401  (before torch: sets how its OpenMP threads wait)
import numpy as np
import torch
from tqdm import tqdm

from marepo_ros.evaluation.metrics import frame_errors, published_poses
from marepo_ros.io.dataset import SceneDataset
from marepo_ros.io.mapfile import load_map
from marepo_ros.localization.calibration import default_min_confidence
from marepo_ros.localization.pipeline import Pipeline, PipelineConfig
from marepo_ros.localization.registry import ESTIMATORS, make_estimator
from marepo_ros.models.regressor_file import load_regressor
from marepo_ros.training.regressor_data import validation_set

from bench_docs import replace_block, run_stamp  # noqa: E402  (beside this script)

REPO = Path(__file__).resolve().parents[1]
VARIANTS = {"marepo": "marepo", "marepo-gcr": "marepo+GCR", "grr": "grr", "grr-gcr": "grr+GCR"}
GROSS = (50.0, 10.0)     # cm, degrees


def find_models(runs: Path) -> dict[str, list]:
    """{variant label: [model per seed]} from the ablation folders, else the shipped ones."""
    found = {}
    for key, label in VARIANTS.items():
        paths = sorted(runs.glob(f"ab-{key}-s*/model.pt"))
        if paths:
            found[label] = [load_regressor(p) for p in paths]
    for key, label in VARIANTS.items():     # longer single runs (the shipped weights' runs)
        for path in sorted(runs.glob(f"long*-{key}/model.pt")):
            steps = torch.load(path, weights_only=True)["trained_steps"]
            found[f"{label}, {steps} steps"] = [load_regressor(path)]
    return found or {"marepo": [load_regressor()], "grr": [load_regressor(kind="grr")]}


def plot_training(runs: Path, out: Path) -> Path | None:
    """The held-out quick check (median cm and degrees on 40 views of unseen scenes, exact and
    corrupted mixed) against steps in all, for every ``long*-<variant>`` run (a continued run
    is placed after its warm start: offset = its model's recorded steps - its own); a PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    curves = {}
    for key, label in VARIANTS.items():
        for path in sorted(runs.glob(f"long*-{key}/log.jsonl")):
            log = [json.loads(line) for line in path.read_text().splitlines()]
            total = torch.load(path.parent / "model.pt", weights_only=True)["trained_steps"]
            offset = total - log[-1]["step"]
            curves.setdefault(label, []).append(
                [(offset + e["step"], e["quick_val"]["median_cm"], e["quick_val"]["median_deg"])
                 for e in log])
    if not curves:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for (label, parts), colour in zip(curves.items(), ("C0", "C1", "C2", "C3")):
        for i, part in enumerate(sorted(parts)):
            steps, cm, deg = np.array(part).T
            axes[0].plot(steps, cm, "o-", color=colour, ms=3, label=label if i == 0 else None)
            axes[1].plot(steps, deg, "o-", color=colour, ms=3)
    for ax, unit in zip(axes, ("median error (cm)", "median error (°)")):
        ax.set_xlabel("training steps (batch 16; a continued run after its warm start's)")
        ax.set_ylabel(unit)
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle("held-out quick check during training (40 views of unseen rendered rooms)")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def rows_of(models: dict[str, list]):
    """(row name, estimator name, models, options) for every regressor row and ``ransac``."""
    for label, seeds in models.items():
        forms = ("rays", "points") if seeds[0].kind == "grr" else (None,)
        for form in forms:
            name = label + (f" ({form})" if form else "")
            for post in ("", "+refine", "+kf"):
                yield name + post, seeds[0].kind + post, seeds, {"translation": form} if form else {}
    yield "ransac", "ransac", [None], {}


def score(t_cm: np.ndarray, r_deg: np.ndarray, confidence: np.ndarray, ms: list[float],
          seed_medians: list) -> dict:
    return {**published_poses(t_cm, r_deg, confidence, default_min_confidence()),
            "median_cm": float(np.median(t_cm)), "median_deg": float(np.median(r_deg)),
            "pct_5cm_5deg": float(100 * np.mean((t_cm < 5) & (r_deg < 5))),
            "pct_10cm_5deg": float(100 * np.mean((t_cm < 10) & (r_deg < 5))),
            "pct_gross": float(100 * np.mean((t_cm > GROSS[0]) | (r_deg > GROSS[1]))),
            "ms_per_frame": float(np.mean(ms)), "seed_medians": seed_medians, "n": len(t_cm)}


def run_rows(views: list[dict], models: dict[str, list], scene_map=None, head_ms: float = 0.0,
             desc: str = "") -> dict[str, dict]:
    """Every row over ``views`` (dicts of coords, pixels, K_small, gt and, with a map, image, K)."""
    results = {}
    for row, estimator, seeds, options in rows_of(models):
        if estimator.endswith("+kf") and scene_map is None:
            continue
        t_all, r_all, conf, ms, medians = [], [], [], [], []
        for model in seeds:
            kw = dict(options, **({"regressor": model} if model is not None else {}))
            est = make_estimator(estimator, short_side=views[0]["short_side"], scene_map=scene_map,
                                 **kw)
            poses = []
            for v in tqdm(views, desc=f"{desc} {row}", unit="view", leave=False):
                t0 = time.perf_counter()
                if ESTIMATORS[estimator].inputs == "both":
                    e = est.estimate(v["coords"], v["pixels"], v["K_small"], image=v["image"](),
                                     K=v["K"])
                else:
                    e = est.estimate(v["coords"], v["pixels"], v["K_small"])
                ms.append(1e3 * (time.perf_counter() - t0) + head_ms)
                poses.append(None if e is None else e.map_from_cam)
                conf.append(0.0 if e is None else e.confidence)
            t, r = frame_errors(poses, [v["gt"] for v in views])
            t_all.append(t)
            r_all.append(r)
            medians.append((float(np.median(t)), float(np.median(r))))
        results[row] = score(np.concatenate(t_all), np.concatenate(r_all), np.array(conf), ms,
                             medians)
        print(f"{desc:10s} {row:28s} {results[row]['median_cm']:8.2f} cm "
              f"{results[row]['median_deg']:6.2f} deg  {results[row]['pct_5cm_5deg']:5.1f} % 5cm/5°  "
              f"{results[row]['ms_per_frame']:6.1f} ms", flush=True)
    return results


def rendered_views(n_scenes: int) -> list[dict]:
    _, corrupted = validation_set(n_scenes, 5)
    return [{"coords": torch.from_numpy(s.coords_N3), "pixels": torch.from_numpy(s.pixels_N2),
             "K_small": s.K, "gt": s.map_from_cam, "short_side": 240} for s in corrupted]


def redkitchen_views(data: Path, map_path: Path, every: int) -> tuple[list[dict], object, float]:
    """Scene coordinates of every ``every``-th query (computed once), the map, and the median
    encoder + head time (ms)."""
    scene_map = load_map(map_path)
    head = Pipeline(scene_map, PipelineConfig("ransac")).head   # the map's encoder and head
    ds = SceneDataset(data)
    views, head_ms = [], []
    for fr in tqdm(ds.frames("query")[::every], desc="redkitchen scene coordinates", unit="img"):
        view = head(fr.load_image(), ds.K)
        head_ms.append(sum(view.timings_ms.values()))
        views.append({"coords": view.coords_N3, "pixels": view.pixels_N2, "K_small": view.K_small,
                      "gt": fr.map_from_cam,
                      "image": fr.load_image, "K": np.asarray(ds.K, np.float64),
                      "short_side": scene_map.short_side})
    return views, scene_map, float(np.median(head_ms))


def table(rendered: dict, kitchen: dict) -> str:
    md = ["| method | rendered: median cm / ° (per seed) | 5cm/5° % | 10cm/5° % | gross % | wrong / published | ms "
          "| redkitchen: median cm / ° (per seed) | 5cm/5° % | 10cm/5° % | gross % | wrong / published | ms/frame |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]

    def cells(r: dict | None) -> str:
        if r is None:
            return "– | – | – | – | – | –"
        seeds = " / ".join(f"{t:.1f}" for t, _ in r["seed_medians"]) if len(r["seed_medians"]) > 1 else ""
        return (f"{r['median_cm']:.1f} / {r['median_deg']:.2f}" + (f" ({seeds} cm)" if seeds else "")
                + f" | {r['pct_5cm_5deg']:.1f} | {r['pct_10cm_5deg']:.1f} | {r['pct_gross']:.1f} | "
                f"{r['n_wrong_published']} / {r['n_published']} | {r['ms_per_frame']:.0f}")
    for row in dict.fromkeys([*kitchen, *rendered]):        # kitchen has every row, in order
        md.append(f"| `{row}` | {cells(rendered.get(row))} | {cells(kitchen.get(row))} |")
    return "\n".join(md)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=Path, default=REPO / "runs/regressor")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared/data/7scenes-redkitchen")
    ap.add_argument("--map", type=Path, default=REPO / "runs/bench_redkitchen/redkitchen.map")
    ap.add_argument("--every", type=int, default=1, help="every n-th redkitchen query")
    ap.add_argument("--val-scenes", type=int, default=20)
    ap.add_argument("--out", type=Path, default=REPO / "runs/bench_regressors")
    ap.add_argument("--no-docs", action="store_true")
    args = ap.parse_args()
    if not args.map.exists():
        raise SystemExit(f"{args.map} not found: run benchmarks/redkitchen.py first (make bench does)")
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    if (png := plot_training(args.runs, args.out / "training.png")) is not None:
        print(f"wrote {png}")
    models = find_models(args.runs)
    print("models:", {k: len(v) for k, v in models.items()})
    rendered = run_rows(rendered_views(args.val_scenes), models, desc="rendered")
    views, scene_map, head_ms = redkitchen_views(args.data, args.map, args.every)
    kitchen = run_rows(views, models, scene_map, head_ms, desc="redkitchen")
    (args.out / "results.json").write_text(json.dumps({"rendered": rendered, "redkitchen": kitchen,
                                                       "head_ms": head_ms}, indent=1))
    md = table(rendered, kitchen)
    (args.out / "results.md").write_text(md + "\n")
    print(md)
    if not args.no_docs:
        replace_block(REPO / "docs/results.md", "bench:regressors",
                      f"{md}\n\n{run_stamp(time.time() - t0)}")
        print("updated the generated table in docs/results.md")


if __name__ == "__main__":
    main()
