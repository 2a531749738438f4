#!/usr/bin/env python3
"""An evaluation suite, not one split: the estimators on several rows (real splits, no depth,
degraded images, rendered rooms, a corridor), each row scored for accuracy, wrong published
poses and time, with every frame's record kept for fitting a calibrated confidence.

Rows (map: `marepo-ros map build` with `--preset`; the default map has the keyframe feature map
and a scene-coordinate head). "fit": constants may be fitted on the row; "report": only reported,
never fitted on.

- `benchmark` (report): 7-Scenes redkitchen, its fixed block split (750 mapping / 250 query
  frames, splits/*.txt), depth.
- `contiguous` (report): the same recording, map frames 400-999, query frames 0-149, depth.
- `contiguous-b` (fit): map frames 0-599, query frames 850-999, depth.
- `no-depth` (report): the benchmark split, `map build --no-depth` (points triangulated).
- `degraded` (report): the benchmark map; query i of the 250 degraded by
  `evaluation.degrade.KINDS[i % 4]` (dim, colour_cast, motion_blur, noise), its parameters drawn
  from `numpy.random.default_rng(i)` (i: the query's position in the split).
- `rendered` (fit): 3 rooms, `synthetic.random_scene(seed)` for seeds 101, 102, 103 (camera path
  seed the same), 120 mapping + 40 query frames each, 640x480, depth; pooled over the rooms.
- `corridor` (fit): `synthetic.scene.corridor_scene(0)` driven as benchmarks/forward_motion.py
  does (`write_drive_folder`: 200 mapping + 60 query frames, 640x480, no depth).

    .venv/bin/python benchmarks/suite.py [--rows ROW ...] [--estimators points hybrid]
                     [--preset fast] [--out runs/bench_suite] [--data ../shared/data/7scenes-redkitchen]
                     [--quick] [--no-docs] [--update] [--table-only]

Splits of the redkitchen recording are scene folders of symlinks (rgb/, depth/, poses/,
intrinsics.txt, depth_intrinsics.txt) with their own splits/; nothing is copied but the
degraded query images (PNG). Maps are built once and reused while their scene, split, build
options and mapping code are the same (MAP.json beside each map); rendered folders are re-rendered only when their
settings change; every evaluation runs again.

Writes, under --out: OUT/suite.json (per row and estimator: metrics, per_frame.csv path(s) and
timings), OUT/suite.md (the table), OUT/per_frame.csv (every frame of every row and estimator:
row, used_for, estimator, scene, degradation, then eval's per_frame.csv columns: name,
translation_cm, rotation_deg, inliers, inlier_ratio, confidence, ms). The table goes between the
`bench:suite` markers of docs/results.md when they exist (not with --quick or --no-docs).
`--quick` tests the script: 20 mapping / 6 query frames per scene (evenly thinned), rendered
scenes at 320x240, `--epochs 1` for the head (no head at all when only `points` is asked for),
into runs/bench_suite_quick.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import marepo_ros  # (first, before torch: sets how its OpenMP threads wait)
import cv2
import numpy as np

from marepo_ros import cli
from marepo_ros.evaluation.degrade import KINDS, degrade
from marepo_ros.evaluation.metrics import THRESHOLDS, metrics_json, published_poses
from marepo_ros.io.dataset import SceneDataset
from marepo_ros.localization.registry import NAMES as ESTIMATORS

from bench_docs import replace_block, run_stamp  # noqa: E402  (beside this script)

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs/results.md"
README = REPO / "README.md"
MARKER = "bench:suite"
ROOM_SEEDS = (101, 102, 103)
FULL = {"mapping": None, "query": None, "room_mapping": 120, "room_query": 40,
        "drive_mapping": 200, "drive_query": 60, "width": 640, "height": 480}
QUICK = {"mapping": 20, "query": 6, "room_mapping": 20, "room_query": 6,
         "drive_mapping": 20, "drive_query": 6, "width": 320, "height": 240}
HEADLESS = {"points"}          # estimators that need no scene-coordinate head
CSV_COLUMNS = ["name", "translation_cm", "rotation_deg", "inliers", "inlier_ratio", "confidence", "ms",
               "sigma_cm", "sigma_deg", "agreement", "runner_up", "raw_confidence"]


@dataclass
class Part:
    """One scene of a row: the folder evaluated, the map it is localized in (built from
    ``map_scene`` with ``build_args``), and how to make the folders."""
    label: str
    scene: Path
    map_path: Path
    map_scene: Path
    build_args: list[str]
    prepare: Callable[[], None]
    degradations: dict[str, str] = field(default_factory=dict)   # frame name -> kind


@dataclass
class Row:
    name: str
    used_for: str          # "fit" or "report"
    about: str
    parts: list[Part]


# ---------------------------------------------------------------- scene folders

def frame_names(first: int, last: int) -> list[str]:
    """frame-FIRST ... frame-LAST (inclusive), as the redkitchen folder names them."""
    return [f"frame-{i:06d}" for i in range(first, last + 1)]


def thin(names: list[str], n: int | None) -> list[str]:
    """``n`` names evenly spread over ``names`` (all of them for None)."""
    if n is None or n >= len(names):
        return list(names)
    return [names[i] for i in np.linspace(0, len(names) - 1, n).round().astype(int)]


def link_scene(data: Path, out: Path, mapping: list[str], query: list[str]) -> None:
    """A scene folder of symlinks to ``data`` (rgb/, depth/, poses/, intrinsics) with its own
    splits/mapping.txt and splits/query.txt."""
    out.mkdir(parents=True, exist_ok=True)
    for item in ("rgb", "depth", "poses", "intrinsics.txt", "depth_intrinsics.txt"):
        target, link = (data / item).resolve(), out / item
        if link.is_symlink() or link.exists():
            if link.is_symlink() and Path(os.readlink(link)) == target:
                continue
            link.unlink()
        if target.exists():
            link.symlink_to(target, target_is_directory=target.is_dir())
    write_splits(out, mapping, query)


def write_splits(out: Path, mapping: list[str], query: list[str]) -> None:
    (out / "splits").mkdir(parents=True, exist_ok=True)
    for split, names in (("mapping", mapping), ("query", query)):
        path = out / "splits" / f"{split}.txt"
        text = "".join(f"{n}\n" for n in names)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)


def stamped(folder: Path, settings: dict) -> bool:
    """Whether ``folder`` was made with ``settings`` (its settings.json)."""
    stamp = folder / "settings.json"
    return stamp.exists() and json.loads(stamp.read_text()) == settings


def stamp(folder: Path, settings: dict) -> None:
    (folder / "settings.json").write_text(json.dumps(settings, indent=1) + "\n")


def degraded_scene(data: Path, out: Path, names: list[str]) -> dict[str, str]:
    """A scene folder of the query frames ``names`` of ``data``, frame i degraded by
    KINDS[i % 4] with rng default_rng(i), as PNG (poses and intrinsics linked); name -> kind."""
    kinds = {name: KINDS[i % len(KINDS)] for i, name in enumerate(names)}
    settings = {"source": str(data.resolve()), "names": names, "kinds": list(KINDS), "seed": "index"}
    if stamped(out, settings):
        return kinds
    shutil.rmtree(out, ignore_errors=True)
    (out / "rgb").mkdir(parents=True)
    for item in ("poses", "intrinsics.txt"):
        target = (data / item).resolve()
        (out / item).symlink_to(target, target_is_directory=target.is_dir())
    ds = SceneDataset(data)
    lines = ["name,kind,seed"]
    for i, name in enumerate(names):
        image = degrade(ds.frame(name).load_image(), kinds[name], np.random.default_rng(i))
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
        cv2.imwrite(str(out / "rgb" / f"{name}.color.png"), bgr)
        lines.append(f"{name},{kinds[name]},{i}")
    (out / "degradations.csv").write_text("\n".join(lines) + "\n")
    write_splits(out, [], names)
    stamp(out, settings)
    print(f"degraded {len(names)} query frames into {out}")
    return kinds


def rendered_scene(out: Path, settings: dict) -> None:
    """A rendered room (``kind`` room) or corridor drive (``kind`` corridor) folder, unless
    ``out`` already holds ``settings``."""
    from marepo_ros.synthetic.folders import write_drive_folder, write_scene_folder
    from marepo_ros.synthetic.scene import corridor_scene, random_scene

    if stamped(out, settings):
        return
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.time()
    s = settings
    if s["kind"] == "room":
        write_scene_folder(random_scene(s["seed"]), out, n_mapping=s["mapping"], n_query=s["query"],
                           with_depth=True, width=s["width"], height=s["height"], seed=s["seed"])
    else:
        write_drive_folder(corridor_scene(s["seed"]), out, n_mapping=s["mapping"],
                           n_query=s["query"], width=s["width"], height=s["height"], seed=s["seed"])
    stamp(out, settings)
    print(f"rendered {s['kind']} {s['seed']}: {s['mapping']} + {s['query']} frames of "
          f"{s['width']}x{s['height']} into {out} in {time.time() - t0:.0f} s")


# ---------------------------------------------------------------- the rows

def plan(args) -> list[Row]:
    """The rows asked for, with their scenes and maps (nothing made yet)."""
    n = QUICK if args.quick else FULL
    data, out = args.data, args.out
    head = not (args.quick and set(args.estimators) <= HEADLESS)
    base = ["--preset", args.preset] + ([] if head else ["--no-head"]) + \
        (["--epochs", "1"] if args.quick and head else [])

    def block() -> tuple[list[str], list[str]]:
        """The recording's own (block) split: mapping and query names."""
        ds = SceneDataset(data)
        return ds.split_names("mapping"), ds.split_names("query")

    scenes, maps = out / "scenes", out / "maps"

    def kitchen_part(row: str, mapping: list[str], query: list[str], extra=()) -> Part:
        scene = scenes / row
        return Part(row, scene, maps / f"{row}.map", scene, base + list(extra),
                    lambda: link_scene(data, scene, thin(mapping, n["mapping"]), thin(query, n["query"])))

    def rendered_part(kind: str, seed: int, label: str) -> Part:
        scene = scenes / label
        settings = {"kind": kind, "seed": seed, "width": n["width"], "height": n["height"],
                    "mapping": n["room_mapping" if kind == "room" else "drive_mapping"],
                    "query": n["room_query" if kind == "room" else "drive_query"]}
        return Part(label, scene, maps / f"{label}.map", scene, list(base),
                    lambda: rendered_scene(scene, settings))

    rows = {
        "benchmark": lambda: Row("benchmark", "report", "redkitchen, its block split, depth",
                                 [kitchen_part("benchmark", *block())]),
        "contiguous": lambda: Row("contiguous", "report", "redkitchen, map 400-999, query 0-149, depth",
                                  [kitchen_part("contiguous", frame_names(400, 999), frame_names(0, 149))]),
        "contiguous-b": lambda: Row("contiguous-b", "fit", "redkitchen, map 0-599, query 850-999, depth",
                                    [kitchen_part("contiguous-b", frame_names(0, 599),
                                                  frame_names(850, 999))]),
        "no-depth": lambda: Row("no-depth", "report", "redkitchen, block split, `map build --no-depth`",
                                [kitchen_part("no-depth", *block(), extra=["--no-depth"])]),
        "degraded": lambda: degraded_row(data, kitchen_part("benchmark", *block()),
                                         thin(block()[1], n["query"]), scenes / "degraded"),
        "rendered": lambda: Row("rendered", "fit", "3 rendered rooms (seeds 101-103), depth",
                                [rendered_part("room", s, f"rendered-{s}") for s in ROOM_SEEDS]),
        "corridor": lambda: Row("corridor", "fit", "rendered corridor drive, no depth",
                                [rendered_part("corridor", 0, "corridor")]),
    }
    return [rows[name]() for name in args.rows]


def degraded_row(data: Path, benchmark: Part, queries: list[str], scene: Path) -> Row:
    """The benchmark map, localizing degraded copies of the benchmark queries."""
    part = Part("degraded", scene, benchmark.map_path, benchmark.map_scene, benchmark.build_args,
                lambda: None)

    def prepare():
        benchmark.prepare()                          # the map's scene
        part.degradations.update(degraded_scene(data, scene, queries))
    part.prepare = prepare
    return Row("degraded", "report", "redkitchen block split, each query dimmed, colour-cast, "
               "motion-blurred or noisy (in turn)", [part])


# ---------------------------------------------------------------- maps and evaluations

def mapping_code() -> str:
    """sha1 of the sources that make a map (marepo_ros/mapping, models, io): a map built by other
    code is built again."""
    root = Path(marepo_ros.__file__).parent
    digest = hashlib.sha1()
    for path in sorted(p for sub in ("mapping", "models", "io") for p in (root / sub).glob("*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


def build(part: Part) -> tuple[float, bool]:
    """Build ``part``'s map unless it exists with the same scene, split, options and mapping code
    (MAP.json); (seconds, reused)."""
    scene = part.map_scene
    settings = {"scene": str(scene), "args": part.build_args,
                "mapping": hashlib.sha1((scene / "splits/mapping.txt").read_bytes()).hexdigest(),
                "mapping_code": mapping_code()}
    if (scene / "settings.json").exists():
        settings["scene_settings"] = json.loads((scene / "settings.json").read_text())
    stamp_path = part.map_path.with_suffix(".json")
    if part.map_path.exists() and stamp_path.exists() and json.loads(stamp_path.read_text()) == settings:
        return 0.0, True
    part.map_path.parent.mkdir(parents=True, exist_ok=True)
    stamp_path.unlink(missing_ok=True)
    t0 = time.time()
    code = cli.main(["map", "build", str(scene), "--out", str(part.map_path), *part.build_args])
    if code != 0:
        raise SystemExit(f"suite: map build of {scene} failed (exit status {code})")
    stamp_path.write_text(json.dumps(settings, indent=1) + "\n")
    return time.time() - t0, False


def evaluate(part: Part, estimator: str, out: Path) -> dict:
    code = cli.main(["eval", str(part.scene), "--map", str(part.map_path), "--estimator", estimator,
                     "--out", str(out)])
    if code != 0:
        raise SystemExit(f"suite: eval of {part.scene} with {estimator} failed (exit status {code})")
    return json.loads((out / "metrics.json").read_text())


def read_per_frame(path: Path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f))


def pooled_metrics(records: list[dict], min_confidence: float) -> dict:
    """The metrics eval writes (the ones the table shows and the counts), over the per-frame
    records of several scenes together."""
    t = np.array([float(r["translation_cm"]) for r in records])
    rot = np.array([float(r["rotation_deg"]) for r in records])
    conf = np.array([float(r["confidence"]) for r in records])
    ms = np.array([float(r["ms"]) for r in records])
    n = len(t)
    out = {"n_frames": n, "n_localized": int(np.isfinite(t).sum()),
           "median_translation_cm": float(np.median(t)) if n else float("nan"),
           "median_rotation_deg": float(np.median(rot)) if n else float("nan"),
           "ms_per_frame": float(ms.mean()) if n else float("nan")}
    for name, tc, rd in THRESHOLDS:
        out[name] = float(100 * np.mean((t < tc) & (rot < rd))) if n else 0.0
    out.update(published_poses(t, rot, conf, min_confidence))
    return out


def run_row(row: Row, estimators: list[str], out: Path) -> tuple[dict, list[dict]]:
    """Build the row's maps, evaluate every estimator on every part; (the row's suite.json
    entry, its per-frame records)."""
    t_row = time.time()
    entry = {"used_for": row.used_for, "about": row.about, "scenes": [], "estimators": {}}
    for part in row.parts:
        part.prepare()
        seconds, reused = build(part)
        ds = SceneDataset(part.scene)
        entry["scenes"].append({
            "label": part.label, "scene": str(part.scene), "map": str(part.map_path),
            "map_frames": len(SceneDataset(part.map_scene).split_names("mapping")),
            "query_frames": len(ds.split_names("query")),
            "map_build_s": round(seconds, 1), "map_reused": reused})
    records = []
    for estimator in estimators:
        t0 = time.time()
        per_part, csvs, rows = {}, [], []
        for part in row.parts:
            eval_dir = out / "eval" / row.name / (part.label if len(row.parts) > 1 else "") / estimator
            per_part[part.label] = evaluate(part, estimator, eval_dir)
            csvs.append(str(eval_dir / "per_frame.csv"))
            for r in read_per_frame(eval_dir / "per_frame.csv"):
                rows.append({"row": row.name, "used_for": row.used_for, "estimator": estimator,
                             "scene": part.label, "degradation": part.degradations.get(r["name"], ""),
                             **{k: r[k] for k in CSV_COLUMNS}})
        if len(row.parts) == 1:
            metrics = per_part[row.parts[0].label]
        else:
            metrics = pooled_metrics(rows, next(iter(per_part.values()))["min_confidence"])
        if any(part.degradations for part in row.parts):
            metrics = {**metrics, "by_degradation": {
                kind: pooled_metrics([r for r in rows if r["degradation"] == kind], metrics["min_confidence"])
                for kind in KINDS}}
        entry["estimators"][estimator] = {
            "metrics": metrics, "per_frame_csv": csvs, "eval_s": round(time.time() - t0, 1),
            **({"scenes": per_part} if len(row.parts) > 1 else {})}
        records += rows
        print(f"[suite] {row.name:12s} {estimator:8s} {progress_line(metrics)}; maps "
              f"{sum(s['map_build_s'] for s in entry['scenes']):.0f} s"
              f"{' (reused)' if all(s['map_reused'] for s in entry['scenes']) else ''}, "
              f"eval {time.time() - t0:.0f} s", flush=True)
    entry["row_s"] = round(time.time() - t_row, 1)
    return entry, records


def _num(v, fmt: str) -> str:
    return "–" if v is None or (isinstance(v, float) and not np.isfinite(v)) else format(v, fmt)


def progress_line(m: dict) -> str:
    return (f"5cm/5° {_num(m['pct_5cm_5deg'], '.1f')} %, 10cm/5° {_num(m['pct_10cm_5deg'], '.1f')} %, "
            f"median {_num(m['median_translation_cm'], '.2f')} cm, wrong/published "
            f"{m['n_wrong_published']}/{m['n_published']} of {m['n_frames']}, "
            f"{_num(m['ms_per_frame'], '.0f')} ms/frame")


def results_table(suite: dict) -> str:
    """The markdown table: a line per row and estimator."""
    md = ["| row | used for | map / query frames | estimator | 5cm/5° % | 10cm/5° % | median cm "
          "| wrong / published | ms/frame |", "|---|---|---|---|---|---|---|---|---|"]
    for name, entry in suite["rows"].items():
        frames = (f"{sum(s['map_frames'] for s in entry['scenes'])} / "
                  f"{sum(s['query_frames'] for s in entry['scenes'])}")
        for estimator, e in entry["estimators"].items():
            m = e["metrics"]
            md.append(f"| `{name}` | {entry['used_for']} | {frames} | `{estimator}` | "
                      f"{_num(m['pct_5cm_5deg'], '.1f')} | {_num(m['pct_10cm_5deg'], '.1f')} | "
                      f"{_num(m['median_translation_cm'], '.2f')} | "
                      f"{m['n_wrong_published']} / {m['n_published']} | {_num(m['ms_per_frame'], '.0f')} |")
    return "\n".join(md)


def summary_table(suite: dict) -> str:
    """The README's short table: per row, the default (``cascade``, what ``auto`` runs on a map
    with keyframes and a head) against ``points`` and ``hybrid``, where they ran."""
    md = ["| row | used for | default `cascade`: 5cm/5° % / 10cm/5° % | wrong / published | ms | "
          "`points` 5cm/5° / 10cm/5° | `hybrid` 5cm/5° / 10cm/5° |", "|---|---|---|---|---|---|---|"]

    def pct(e):
        m = e["metrics"]
        return f"{_num(m['pct_5cm_5deg'], '.1f')} / {_num(m['pct_10cm_5deg'], '.1f')}" if e else "–"
    for name, entry in suite["rows"].items():
        est = entry["estimators"]
        if "cascade" not in est:
            continue
        m = est["cascade"]["metrics"]
        md.append(f"| `{name}` | {entry['used_for']} | {pct(est['cascade'])} | "
                  f"{m['n_wrong_published']} / {m['n_published']} | {_num(m['ms_per_frame'], '.0f')} | "
                  f"{pct(est.get('points'))} | {pct(est.get('hybrid'))} |")
    return "\n".join(md)


def degradation_table(suite: dict) -> str:
    """The degraded row by kind (empty without it)."""
    entry = suite["rows"].get("degraded")
    if not entry:
        return ""
    md = ["| degradation | estimator | frames | 5cm/5° % | 10cm/5° % | median cm | wrong / published |",
          "|---|---|---|---|---|---|---|"]
    for estimator, e in entry["estimators"].items():
        for kind, m in e["metrics"]["by_degradation"].items():
            md.append(f"| {kind} | `{estimator}` | {m['n_frames']} | {_num(m['pct_5cm_5deg'], '.1f')} | "
                      f"{_num(m['pct_10cm_5deg'], '.1f')} | {_num(m['median_translation_cm'], '.2f')} | "
                      f"{m['n_wrong_published']} / {m['n_published']} |")
    return "\n".join(md)


ABOUT = ("Rows: `benchmark` redkitchen's block split (750 / 250), depth; `contiguous` map frames "
         "400-999, query 0-149; `contiguous-b` map 0-599, query 850-999; `no-depth` the block split "
         "with `map build --no-depth`; `degraded` the benchmark map, each query dimmed, colour-cast, "
         "motion-blurred or noisy in turn (`evaluation.degrade`); `rendered` 3 rendered rooms "
         "(seeds 101-103, 640x480, depth), pooled; `corridor` the rendered corridor drive, no depth. "
         "\"fit\": rows that constants (a calibrated confidence) may be fitted on; \"report\": never "
         "fitted on. Wrong: a published pose (confidence >= the node's min_confidence) more than "
         "50 cm or 10° off.")


def records_of(suite: dict, out: Path) -> list[dict]:
    """The per-frame records of the rows of a suite.json, read back from their per_frame.csv
    files (the degradation of a degraded query from its scene's degradations.csv)."""
    kinds = {}
    for table in out.glob("scenes/**/degradations.csv"):
        kinds.update({r["name"]: r["kind"] for r in read_per_frame(table)})
    records = []
    for name, row in suite["rows"].items():
        for estimator, entry in row["estimators"].items():
            for path in entry["per_frame_csv"]:
                scene = Path(path).parent.parent.name if len(entry["per_frame_csv"]) > 1 else name
                records += [{"row": name, "used_for": row["used_for"], "estimator": estimator,
                             "scene": scene, "degradation": kinds.get(r["name"], "") if name == "degraded" else "",
                             **{k: r.get(k, "") for k in CSV_COLUMNS}} for r in read_per_frame(Path(path))]
    return records


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    row_names = ["benchmark", "contiguous", "contiguous-b", "no-depth", "degraded", "rendered", "corridor"]
    ap.add_argument("--rows", nargs="+", choices=row_names, default=row_names, metavar="ROW",
                    help=f"rows to run (default all: {' '.join(row_names)})")
    ap.add_argument("--estimators", nargs="+", choices=ESTIMATORS, default=["points", "hybrid"],
                    metavar="ESTIMATOR", help="estimators to evaluate on every row (default: points hybrid)")
    ap.add_argument("--preset", default="fast", help="map build preset (default fast)")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared/data/7scenes-redkitchen")
    ap.add_argument("--out", type=Path, default=None,
                    help="output folder (default runs/bench_suite, runs/bench_suite_quick with --quick)")
    ap.add_argument("--quick", action="store_true", help="test the script: 20 mapping / 6 query "
                    "frames per scene, 320x240 renders, a 1-epoch head (none for points alone); "
                    "implies --no-docs")
    ap.add_argument("--no-docs", action="store_true", help="do not write the table into docs/results.md")
    ap.add_argument("--table-only", action="store_true", help="evaluate nothing: write the table "
                    "and OUT/per_frame.csv from the rows OUT/suite.json holds (e.g. of a run that "
                    "was stopped after some rows)")
    ap.add_argument("--update", action="store_true", help="keep what OUT/suite.json holds that this "
                    "run does not run: other rows, and other estimators of its rows")
    args = ap.parse_args()
    args.rows = [r for r in row_names if r in args.rows]
    args.out = (args.out or REPO / ("runs/bench_suite_quick" if args.quick else "runs/bench_suite")).resolve()
    args.data = args.data.resolve()
    args.out.mkdir(parents=True, exist_ok=True)

    t0 = time.time()
    if args.table_only:
        suite = json.loads((args.out / "suite.json").read_text())
        records = records_of(suite, args.out)
        suite.setdefault("total_s", 0.0)
    else:
        suite = {"marepo_ros": marepo_ros.__version__, "quick": args.quick, "preset": args.preset,
                 "estimators": args.estimators, "data": str(args.data), "rows": {}}
        kept = {}
        if args.update and (args.out / "suite.json").exists():
            kept = json.loads((args.out / "suite.json").read_text())["rows"]
            suite["rows"] = {name: kept[name] for name in row_names if name in kept and name not in args.rows}
        records = records_of(suite, args.out)
        for row in plan(args):
            suite["rows"][row.name], rows = run_row(row, args.estimators, args.out)
            if row.name in kept:      # --update: the row's other estimators stay
                entry = suite["rows"][row.name]
                entry["estimators"] = {e: entry["estimators"].get(e) or kept[row.name]["estimators"][e]
                                       for e in ESTIMATORS if e in entry["estimators"]
                                       or e in kept[row.name]["estimators"]}
            suite["rows"] = {name: suite["rows"][name] for name in row_names if name in suite["rows"]}
            records += rows
            (args.out / "suite.json").write_text(metrics_json(suite))
        suite["total_s"] = round(time.time() - t0, 1)
        (args.out / "suite.json").write_text(metrics_json(suite))
    with (args.out / "per_frame.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, ["row", "used_for", "estimator", "scene", "degradation", *CSV_COLUMNS])
        writer.writeheader()
        writer.writerows(records)

    by_kind = degradation_table(suite)
    table = results_table(suite) + (f"\n\nThe `degraded` row by kind:\n\n{by_kind}" if by_kind else "")
    quick = ("**--quick run (tests the script, not results)**: 20 mapping / 6 query frames per scene, "
             "320x240 renders, a 1-epoch head or none.\n\n" if args.quick else "")
    text = f"{quick}{ABOUT}\n\n{table}"
    (args.out / "suite.md").write_text(text + "\n")
    print(f"\n{table}\n\n{suite['total_s'] / 60:.1f} min in all; wrote {args.out / 'suite.json'}, "
          f"suite.md and per_frame.csv ({len(records)} frame records)")
    if args.quick or args.no_docs:
        return
    marker = f"<!-- {MARKER}:start -->"
    if marker not in DOC.read_text():
        print(f"note: {DOC.relative_to(REPO)} has no {marker} / <!-- {MARKER}:end --> markers; "
              f"the table is in {args.out / 'suite.md'} only")
        return
    replace_block(DOC, MARKER, f"{text}\n\n{run_stamp(suite['total_s'])}")
    print(f"updated the generated table in {DOC.relative_to(REPO)}")
    if f"<!-- {MARKER}:start -->" in README.read_text():
        replace_block(README, MARKER, f"{summary_table(suite)}\n\n{run_stamp(suite['total_s'])}")
        print(f"updated the summary in {README.relative_to(REPO)}")


if __name__ == "__main__":
    main()
