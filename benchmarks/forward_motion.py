#!/usr/bin/env python3
"""Depth-free mapping of forward motion: a rendered 40 m corridor driven forward, no depth.

Renders ``synthetic.scene.corridor_scene`` into a scene folder (``write_drive_folder``: mapping
frames from a drive along the centre line, query frames from a second drive 0.3 m to the side
with its own sway and heading jitter, no depth/), then maps and evaluates it through the CLI,
each way a user without depth can:

- `map build --no-depth --no-feature-map` (the ACE head trained from RGB and poses alone, the
  product before the keyframe map), evaluated with `ransac`;
- `map build --no-depth` (the default map: XFeat keyframes with points triangulated between
  them, and the head, whose 3D loss takes those points as targets), evaluated with `ransac`
  (the head) and `points` (the keyframes).

    .venv/bin/python benchmarks/forward_motion.py [--out runs/bench_forward] [--quick]
                     [--mapping 200] [--query 60] [--width 640] [--height 480] [--seed 0]

Prints a markdown table (the must-show column is % within 50 cm / 5 deg), writes
OUT/results.json and OUT/results.md, and the table between the `bench:forward` markers of
docs/results.md and README.md (not with --quick or --no-docs). The scene folder OUT/scene is re-rendered only when its
settings changed (OUT/scene/render.json).
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import marepo_ros  # before torch: sets how its OpenMP threads wait
import numpy as np

from marepo_ros import cli
from marepo_ros.io.mapfile import read_header
from marepo_ros.synthetic.folders import write_drive_folder
from marepo_ros.synthetic.scene import corridor_scene

from bench_docs import replace_block, run_stamp  # noqa: E402  (beside this script)

REPO = Path(__file__).resolve().parents[1]


def render_scene(out: Path, settings: dict) -> float:
    """Render the corridor folder into ``out`` unless it already holds ``settings``; seconds."""
    stamp = out / "render.json"
    if stamp.exists() and json.loads(stamp.read_text()) == settings:
        print(f"reusing {out} ({settings})")
        return 0.0
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.time()
    scene = corridor_scene(settings["seed"])
    write_drive_folder(scene, out, n_mapping=settings["mapping"], n_query=settings["query"],
                       width=settings["width"], height=settings["height"], seed=settings["seed"])
    seconds = time.time() - t0
    stamp.write_text(json.dumps(settings) + "\n")
    print(f"rendered {settings['mapping']} + {settings['query']} frames of "
          f"{settings['width']}x{settings['height']} into {out} in {seconds:.0f} s")
    return seconds


def build(data: Path, out: Path, *extra: str) -> dict:
    """Build a map with the CLI (fast preset, no depth); its header plus the file size."""
    assert cli.main(["map", "build", str(data), "--out", str(out), "--preset", "fast",
                     "--no-depth", *extra]) == 0
    return {**read_header(out), "file_mb": out.stat().st_size / 1e6}


def evaluate(data: Path, map_path: Path, estimator: str, out: Path) -> dict:
    assert cli.main(["eval", str(data), "--map", str(map_path), "--estimator", estimator,
                     "--out", str(out)]) == 0
    return json.loads((out / "metrics.json").read_text())


NAMES = {"ace-fast+ransac": "before: ACE head from RGB + poses (`--no-depth --no-feature-map`) "
                            "+ `ransac`",
         "default+ransac": "default map (`--no-depth`): head with triangulated 3D targets + `ransac`",
         "default+points": "default map (`--no-depth`): triangulated XFeat keyframes + `points`"}


def results_table(rows: dict[str, dict]) -> str:
    """The markdown table of one run: a row per method."""
    md = ["| method | median cm / deg | % within 50cm/5° | % within 5cm/5° | localized | "
          "mapping s | ms/frame | map MB |", "|---|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        md.append(f"| {NAMES.get(name, name)} | {r['median_translation_cm']:.1f} / "
                  f"{r['median_rotation_deg']:.2f} | {r['pct_50cm_5deg']:.1f} | "
                  f"{r['pct_5cm_5deg']:.1f} | {r['n_localized']}/{r['n_frames']} | "
                  f"{r['mapping_s']:.0f} | {r['ms_per_frame']:.0f} | {r['map_mb']:.1f} |")
    return "\n".join(md)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=REPO / "runs/bench_forward")
    ap.add_argument("--mapping", type=int, default=200, help="mapping frames (default 200)")
    ap.add_argument("--query", type=int, default=60, help="query frames (default 60)")
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--seed", type=int, default=0, help="corridor_scene and drive seed")
    ap.add_argument("--no-docs", action="store_true", help="do not rewrite the tables in the docs")
    ap.add_argument("--quick", action="store_true",
                    help="a smoke run: 40 mapping + 12 query frames of 320x240")
    args = ap.parse_args()
    if args.quick:
        args.mapping, args.query, args.width, args.height = 40, 12, 320, 240
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    data = args.out / "scene"
    settings = {"seed": args.seed, "mapping": args.mapping, "query": args.query,
                "width": args.width, "height": args.height}
    render_s = render_scene(data, settings)

    rows, seconds = {}, {"render": render_s}
    t = time.time()
    head = build(data, args.out / "A.map", "--no-feature-map")
    rows["ace-fast+ransac"] = {
        **evaluate(data, args.out / "A.map", "ransac", args.out / "eval_ransac"),
        "mapping_s": head["stats"]["total_seconds"], "map_mb": head["file_mb"]}
    seconds["ace-fast+ransac"] = time.time() - t
    t = time.time()
    default = build(data, args.out / "B.map")
    fm = default["feature_map"]
    mapping = {"mapping_s": default["stats"]["total_seconds"], "map_mb": default["file_mb"]}
    rows["default+ransac"] = {**evaluate(data, args.out / "B.map", "ransac", args.out / "eval_default_ransac"),
                              **mapping, "buffer_3d_targets": default["stats"].get("buffer_3d_targets")}
    rows["default+points"] = {**evaluate(data, args.out / "B.map", "points", args.out / "eval_points"),
                              **mapping, "feature_map": fm}
    seconds["default"] = time.time() - t
    seconds["total"] = time.time() - t0

    table = results_table(rows)
    (args.out / "results.json").write_text(json.dumps(
        {"marepo_ros": marepo_ros.__version__, "scene": settings, "rows": rows,
         "wall_seconds": seconds}, indent=2, default=float) + "\n")
    (args.out / "results.md").write_text(table + "\n")
    print(f"\ncorridor_scene({args.seed}), {args.mapping} mapping + {args.query} query frames "
          f"({args.width}x{args.height}, no depth), {seconds['total'] / 60:.1f} min in all "
          f"(render {render_s:.0f} s, "
          + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items() if k not in ("render", "total"))
          + ")\n")
    print(table)
    print(f"\nfeature map: {json.dumps(fm, default=float)}")
    print(f"wrote {args.out / 'results.json'} and results.md")
    if not (args.no_docs or args.quick):
        scene = (f"`corridor_scene({args.seed})`: {args.mapping} mapping + {args.query} query frames, "
                 f"{args.width}x{args.height}, no depth; the query drive runs 0.3 m beside the mapping one.")
        text = f"{scene}\n\n{table}\n\n{run_stamp(seconds['total'])}"
        for doc in (REPO / "docs/results.md", REPO / "README.md"):
            replace_block(doc, "bench:forward", text)
            print(f"updated the generated table in {doc.relative_to(REPO)}")


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
