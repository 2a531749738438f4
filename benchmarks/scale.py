#!/usr/bin/env python3
"""Scale: keyframe maps of a rendered site of rooms along a corridor (``synthetic.site``) at 1x,
4x and 16x the redkitchen's floor area, each mapped `--no-head` (keyframes from depth) and
localized with `points` on a second pass through every room and the corridor.

Per size: mapping seconds (`marepo-ros map build` in a fresh process, start-up included), map
MB, keyframes, the peak resident memory (VmHWM) of a fresh process that loads the map and
localizes every query (Python, torch, XFeat, the map and the estimator: what the node holds
but rclpy), median query ms, recall within 5 cm/5° and 10 cm/5°, and retrieval recall: the
share of queries whose retrieved keyframes (those matched) include one that truly sees the
same surfaces (``overlaps``: a fifth of its map points visible in the query's true view at the
rendered depth). Targets: query ms at 16x <= 1.3x that at 1x; recall (5 cm/5°) within 2 points;
map MB and memory growing no faster than the area.

    .venv/bin/python benchmarks/scale.py [--multiples 1 4 16] [--out runs/bench_scale] [--no-docs]

Rendered folders are cached under --out (delete them to render again). Writes the table
between the `bench:scale` markers of docs/results.md (not with --no-docs).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import marepo_ros  # noqa: F401  (before torch: sets how its OpenMP threads wait)
import numpy as np
from marepo_ros.mapping.feature_map import FeatureMapConfig

from bench_docs import replace_block, run_stamp  # noqa: E402  (beside this script)

REPO = Path(__file__).resolve().parents[1]
REDKITCHEN = REPO.parent / "shared/data/7scenes-redkitchen"


def floor_area_m2(root: Path, step: int = 10, percentile: float = 2.0) -> tuple[float, str]:
    """(m², how) of a scene folder's floor: its depth points (every ``step``-th frame, 1 px in
    64) projected on the plane normal to the mean camera y axis (down, for a handheld
    camera), the extent between the ``percentile`` and 100 - ``percentile`` percentiles along
    their principal axes."""
    from marepo_ros.io.dataset import SceneDataset

    ds = SceneDataset(root)
    frames = ds.frames("all")
    poses = np.stack([f.map_from_cam for f in frames])
    down = poses[:, :3, 1].mean(0)
    down /= np.linalg.norm(down)
    a = np.cross(down, [1.0, 0, 0])
    a /= np.linalg.norm(a)
    b = np.cross(down, a)
    pts = []
    for f in frames[::step]:
        depth = f.load_depth()
        v, u = np.mgrid[0:depth.shape[0]:8, 0:depth.shape[1]:8]
        z = depth[v, u]
        ok = (z > 0) & (z < 6)
        K = ds.depth_K
        cam = np.stack([(u[ok] - K[0, 2]) / K[0, 0] * z[ok], (v[ok] - K[1, 2]) / K[1, 1] * z[ok],
                        z[ok]], 1)
        pts.append(cam @ f.map_from_cam[:3, :3].T + f.map_from_cam[:3, 3])
    p = np.concatenate(pts)
    xy = np.stack([p @ a, p @ b], 1)
    xy -= xy.mean(0)
    xy = xy @ np.linalg.eigh(np.cov(xy.T))[1]
    ext = np.percentile(xy, 100 - percentile, 0) - np.percentile(xy, percentile, 0)
    return float(ext.prod()), (f"{ext[0]:.1f} m x {ext[1]:.1f} m: the extent of the surfaces its "
                               f"depth images see (every {step}th frame), {percentile:g}-"
                               f"{100 - percentile:g} % along their principal horizontal axes")


# ----------------------------------------------------------------------------- the worker

def overlaps(fm, k: int, cam_from_map: np.ndarray, K: np.ndarray, depth_HW: np.ndarray, *,
             share: float = 0.2, sample: int = 200) -> bool:
    """Whether keyframe ``k``'s map points (up to ``sample``) are at least ``share`` visible in
    a view (cam_from_map 4x4, K 3x3, its true depth HxW metres): in the image, in front, and
    within max(5 cm, 5 %) of the depth there."""
    pts = fm.points_P3[fm.offsets_K1[k]:fm.offsets_K1[k + 1]].astype(np.float64)
    if len(pts) == 0:
        return False
    pts = pts[np.linspace(0, len(pts) - 1, min(sample, len(pts))).astype(int)]
    cam = pts @ cam_from_map[:3, :3].T + cam_from_map[:3, 3]
    z = cam[:, 2]
    front = z > 0.05
    uv = cam[front] @ K.T
    uv = uv[:, :2] / uv[:, 2:]
    u, v = np.rint(uv[:, 0]).astype(int), np.rint(uv[:, 1]).astype(int)
    H, W = depth_HW.shape
    inside = (u >= 0) & (u < W) & (v >= 0) & (v < H)
    seen = np.abs(depth_HW[v[inside], u[inside]] - z[front][inside]) < np.maximum(
        0.05, 0.05 * z[front][inside])
    return seen.sum() >= share * len(pts)


def vm_kb(field: str) -> int:
    """A /proc/self/status memory field (VmRSS, VmHWM) in kB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def worker(map_path: Path, folder: Path, out: Path) -> None:
    """Load the map, localize the folder's query split with `points`, write the measures."""
    from tqdm import tqdm

    from marepo_ros.camera import Camera
    from marepo_ros.evaluation.metrics import summarize
    from marepo_ros.io.dataset import SceneDataset
    from marepo_ros.localization.pipeline import Pipeline, PipelineConfig

    rss_start = vm_kb("VmRSS")
    t0 = time.time()
    pipeline = Pipeline.from_file(map_path, PipelineConfig("points"))
    load_s = time.time() - t0
    rss_loaded = vm_kb("VmRSS")
    est = pipeline.estimator
    fm = pipeline.scene_map.feature_map
    retrieved: list[np.ndarray] = []
    original = est.candidates
    est.candidates = lambda features: retrieved.append(original(features)) or retrieved[-1]
    ds = SceneDataset(folder)
    frames = ds.frames("query")
    camera = Camera(ds.K)
    estimates, gts, ms, hit_any, hit_top, seen_any = [], [], [], [], [], []
    for f in tqdm(frames, desc=f"localize {folder.name}", unit="img", dynamic_ncols=True):
        image = f.load_image()
        n_before = len(retrieved)
        t = time.perf_counter()
        e = pipeline.localize(image, camera)
        ms.append(1e3 * (time.perf_counter() - t))
        estimates.append(None if e is None else e.map_from_cam)
        gts.append(f.map_from_cam)
        depth = f.load_depth().astype(np.float64)
        cam_from_map = np.linalg.inv(f.map_from_cam)
        got = retrieved[-1] if len(retrieved) > n_before else np.zeros(0, int)
        ok = [overlaps(fm, int(k), cam_from_map, ds.K, depth) for k in got]
        hit_any.append(any(ok))
        hit_top.append(bool(ok and ok[0]))
        near = np.argsort(np.linalg.norm(fm.map_from_cam_K44[:, :3, 3] - f.map_from_cam[:3, 3],
                                         axis=1))[:30]   # does any keyframe overlap at all?
        seen_any.append(any(overlaps(fm, int(k), cam_from_map, ds.K, depth) for k in near))
    metrics = summarize(estimates, gts, ms)
    where = (folder / "where.txt").read_text().split("\n")[:len(frames)]
    in_corridor = np.array([w == "corridor" for w in where])
    t_ok = np.array([e is not None and np.linalg.norm(e[:3, 3] - g[:3, 3]) < 0.05
                     for e, g in zip(estimates, gts)])
    out.write_text(json.dumps({
        **metrics, "median_ms": float(np.median(ms)), "p90_ms": float(np.percentile(ms, 90)),
        "retrieval_recall": float(100 * np.mean(hit_any)), "top1_overlap": float(100 * np.mean(hit_top)),
        "any_keyframe_overlaps": float(100 * np.mean(seen_any)),
        "retrieved_per_query": float(np.mean([len(r) for r in retrieved])),
        "pct_5cm_rooms": float(100 * t_ok[~in_corridor].mean()) if (~in_corridor).any() else None,
        "pct_5cm_corridor": float(100 * t_ok[in_corridor].mean()) if in_corridor.any() else None,
        "rss_start_mb": rss_start / 1024, "rss_loaded_mb": rss_loaded / 1024,
        "peak_rss_mb": vm_kb("VmHWM") / 1024, "load_s": load_s,
        "keyframes": int(fm.n_keyframes), "points": int(fm.n_points),
        "feature_map_mb": fm.nbytes() / 1e6,
        "feature_map_stats": pipeline.scene_map.stats.get("feature_map", {})}, indent=1))


# ----------------------------------------------------------------------------- the benchmark

def render(multiple: float, unit_m2: float, args) -> tuple[Path, dict]:
    """The site folder of ``multiple`` x ``unit_m2`` (rendered once, then cached)."""
    from marepo_ros.synthetic.site import make_site, write_site_folder

    folder = args.out / f"site_{multiple:g}x"
    params = {"area_m2": round(multiple * unit_m2, 3), "seed": args.seed,
              "mapping_per_room": args.mapping_per_room, "query_per_room": args.query_per_room,
              "width": args.width, "height": args.height}
    done = folder / "site.json"
    if done.exists() and json.loads(done.read_text())["params"] == params:
        return folder, json.loads(done.read_text())
    t0 = time.time()
    site = make_site(params["area_m2"], args.seed + int(multiple))
    write_site_folder(site, folder, mapping_per_room=args.mapping_per_room,
                      query_per_room=args.query_per_room, seed=args.seed, width=args.width,
                      height=args.height, progress=True)
    info = {"params": params, "rooms": len(site.rooms), "boxes": len(site.scene.boxes),
            "site_area_m2": site.area_m2, "render_s": time.time() - t0,
            "mapping_frames": len((folder / "splits/mapping.txt").read_text().split()),
            "query_frames": len((folder / "splits/query.txt").read_text().split())}
    done.write_text(json.dumps(info, indent=1))
    return folder, info


def measure(folder: Path, out: Path, max_covered: float = 0.0) -> dict:
    """Map the folder (`marepo-ros map build --no-head --no-refine-poses --max-covered SHARE`, a
    fresh process; SHARE 0: the spacing alone), then localize its queries in
    another fresh process (``worker``)."""
    name = folder.name + (f"_overlap{max_covered:g}" if max_covered else "_spacing")
    map_path = out / f"{name}.map"
    t0 = time.time()
    subprocess.run([sys.executable, "-m", "marepo_ros.cli", "map", "build", str(folder),
                    "--no-head", "--no-refine-poses", "--max-covered", str(max_covered),
                    "--out", str(map_path)], check=True)
    mapping_s = time.time() - t0
    result = out / f"{name}.json"
    subprocess.run([sys.executable, __file__, "--worker", str(map_path), str(folder), str(result)],
                   check=True)
    return {**json.loads(result.read_text()), "mapping_s": mapping_s,
            "map_file_mb": map_path.stat().st_size / 1e6}


def table(rows: list[dict], unit_m2: float, how: str, args, describe: bool = True) -> str:
    rule = rows[0]["max_covered"]
    head = ("**Keyframes: the spacing alone (3 cm / 3°, `map build --max-covered 0`).** " if not rule
            else f"**Keyframes: the overlap rule** (`FeatureMapConfig(max_covered={rule:g})`: 3 cm / 3° "
            f"and less than {100 * rule:g} % of the view already covered"
            f"{', the default' if rule == FeatureMapConfig.max_covered else ''}: "
            f"`map build --max-covered {rule:g}`). ")
    lines = [
        head + (f"A rendered site of rooms along a corridor (`synthetic.site`, {args.width}x{args.height} px, "
        f"depth), {args.mapping_per_room} mapping frames per room plus the corridor walked both ways, "
        f"{args.query_per_room} query frames per room (a second pass) plus 6 per room column in the "
        f"corridor. 1x = the redkitchen's floor, {unit_m2:.1f} m² ({how}). Keyframe maps "
        f"(`map build --no-head --no-refine-poses`: the pose refinement is for drifting poses, and "
        f"these are exact), estimator `points`, 2 CPU cores." if describe else ""),
        "",
        "| site | floor m² | rooms | mapping frames | keyframes | mapping s | map MB | peak RSS MB "
        "(loaded map) | query ms (median) | 5cm/5° % | 10cm/5° % | rooms / corridor 5 cm % | "
        "retrieval recall % (top-1) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['multiple']:g}x | {r['site_area_m2']:.0f} | {r['rooms']} | {r['mapping_frames']} | "
            f"{r['keyframes']} | {r['mapping_s']:.0f} | {r['map_file_mb']:.1f} | {r['peak_rss_mb']:.0f} "
            f"({r['rss_loaded_mb']:.0f}) | {r['median_ms']:.0f} | {r['pct_5cm_5deg']:.1f} | "
            f"{r['pct_10cm_5deg']:.1f} | {r['pct_5cm_rooms']:.1f} / {r['pct_5cm_corridor']:.1f} | "
            f"{r['retrieval_recall']:.1f} ({r['top1_overlap']:.1f}) |")
    first, last = rows[0], rows[-1]
    area = last["site_area_m2"] / first["site_area_m2"]
    checks = [
        ("query ms", last["median_ms"] / first["median_ms"], last["median_ms"] <= 1.3 * first["median_ms"],
         "<= 1.3"),
        ("5cm/5° points", last["pct_5cm_5deg"] - first["pct_5cm_5deg"],
         abs(last["pct_5cm_5deg"] - first["pct_5cm_5deg"]) <= 2, "within 2"),
        ("map MB", last["map_file_mb"] / first["map_file_mb"],
         last["map_file_mb"] / first["map_file_mb"] <= area, f"<= area x{area:.1f}"),
        ("peak RSS", last["peak_rss_mb"] / first["peak_rss_mb"],
         last["peak_rss_mb"] / first["peak_rss_mb"] <= area, f"<= area x{area:.1f}")]
    lines += ["", f"{last['multiple']:g}x against {first['multiple']:g}x: " + "; ".join(
        f"{name} {'x' if 'points' not in name else ''}{v:+.1f}".replace("x+", "x") +
        f" ({want}: {'met' if ok else 'NOT met'})" for name, v, ok, want in checks) + "."]
    if not describe:
        return "\n".join(lines)
    lines += ["", "Mapping s: `marepo-ros map build --no-head` wall time in a fresh process "
              "(start-up, reading, XFeat on every keyframe, VLAD vocabulary); rendering is not "
              "included (" + ", ".join(f"{r['multiple']:g}x {r['render_s']:.0f} s" for r in rows)
              + "). Peak RSS: VmHWM of a fresh process that loads the map and localizes all "
              "queries (Python, torch, XFeat, the map; the estimator dequantizes only the retrieved keyframes' descriptors); "
              "in brackets its RSS right after loading. Retrieval recall: share of queries whose "
              "retrieved keyframes (those matched) include one whose map points are at least a "
              "fifth visible in the query's true view; top-1: the first retrieved one does."]
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--worker":
        worker(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--multiples", type=float, nargs="+", default=[1, 4, 16])
    ap.add_argument("--mapping-per-room", type=int, default=120)
    ap.add_argument("--query-per-room", type=int, default=24)
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--height", type=int, default=240)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-covered", type=float, default=FeatureMapConfig.max_covered,
                    help="the overlap rule's share (default: the product's); every size is also "
                         "mapped with the spacing alone (0)")
    ap.add_argument("--out", type=Path, default=REPO / "runs/bench_scale")
    ap.add_argument("--no-docs", action="store_true", help="do not rewrite the table in the docs")
    args = ap.parse_args()
    t_start = time.time()
    args.out.mkdir(parents=True, exist_ok=True)
    unit_m2, how = floor_area_m2(REDKITCHEN)
    rows = []
    for m in args.multiples:
        folder, info = render(m, unit_m2, args)
        for rule in sorted({args.max_covered, 0.0}, reverse=True):
            rows.append({"multiple": m, "max_covered": rule, **info,
                         **measure(folder, args.out, rule)})
            (args.out / "results.json").write_text(json.dumps(rows, indent=1))
    text = "\n\n".join(table([r for r in rows if r["max_covered"] == rule], unit_m2, how, args,
                             describe=i == 0)
                       for i, rule in enumerate(sorted({r["max_covered"] for r in rows}, reverse=True)))
    text += "\n\n" + run_stamp(time.time() - t_start)
    print(text)
    if not args.no_docs:
        replace_block(REPO / "docs/results.md", "bench:scale", text)


if __name__ == "__main__":
    main()
