#!/usr/bin/env python3
"""Offline and live agree on the camera and on ground truth: `marepo-ros eval` of the redkitchen
query frames as bags recorded three ways, against the same map.

- `pinhole`: the frames as they are, ground truth on a pose topic;
- `lens`: the same frames as a camera with a real lens sees them (plumb_bob, a wide-angle
  webcam's D: pixels move up to 60 px at the corners; what falls outside the pinhole image is
  black), D in CameraInfo: eval undistorts the keypoint and scene-coordinate pixels as the node
  does; against the same frames undistorted whole (cv2.undistort, then K: the pinhole images
  this lens gives, with its loss of detail) and the lens ignored (K alone, what bag eval did
  before);
- `tf tree`: the pinhole frames with ground truth only on TF, as robots record it (map -> odom,
  drifting at 2 Hz, -> base_link -> camera_link -> optical frame), scored with `--gt-tf`, and
  with `--gt-topic` on the same bag.

    .venv/bin/python benchmarks/bag_parity.py [--map runs/bench_redkitchen/redkitchen.map]
                                              [--estimator auto] [--out runs/bench_bag_parity]

Without the map (benchmarks/redkitchen.py builds it) a keyframe map is built (`--no-head`, about
20 s). Writes the table between the `bench:bag_parity` markers of docs/results.md (not with
--no-docs).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import marepo_ros  # noqa: F401  (before torch: sets how its OpenMP threads wait)
import numpy as np
from tqdm import tqdm

from marepo_ros import cli
from marepo_ros.camera import Camera
from marepo_ros.evaluation.metrics import frame_errors, published_poses, summarize
from marepo_ros.geometry import Distortion
from marepo_ros.io.bag import BagFrames
from marepo_ros.localization.calibration import default_min_confidence
from marepo_ros.localization.pipeline import Pipeline, PipelineConfig

from bench_docs import replace_block, run_stamp  # noqa: E402  (beside this script)

REPO = Path(__file__).resolve().parents[1]
LENS = Distortion("plumb_bob", (-0.34, 0.11, -0.0002, -0.00003, 0.0))


def evaluate(bag: Path, map_path: Path, out: Path, estimator: str, gt: list[str]) -> dict:
    """`marepo-ros eval` of a bag; its metrics.json."""
    code = cli.main(["eval", str(bag), "--map", str(map_path), "--estimator", estimator,
                     "--image-topic", "/camera/image_raw/compressed", *gt, "--out", str(out)])
    if code != 0:
        raise SystemExit(f"eval of {bag} failed ({code})")
    return json.loads((out / "metrics.json").read_text())


def localize_lens_bag(bag: Path, map_path: Path, estimator: str, undistort_images: bool) -> dict:
    """The lens bag localized with K alone, scored as eval scores: its images as they are (D
    ignored), or first undistorted whole (cv2.undistort: the same frames as a pinhole camera)."""
    import cv2
    pipeline = Pipeline.from_file(map_path, PipelineConfig(estimator))
    frames = BagFrames(bag, image_topic="/camera/image_raw/compressed", gt_topic="/camera/pose")
    estimates, gts, ms, conf = [], [], [], []
    for fr in tqdm(frames.frames(only_with_gt=True), total=frames.n_matched,
                   desc="undistorted frames" if undistort_images else "lens ignored"):
        K = fr.camera.K
        image = (cv2.undistort(fr.image, K, np.array(fr.camera.distortion.coefficients))
                 if undistort_images else fr.image)
        t0 = time.perf_counter()
        est = pipeline.localize(image, Camera(K))
        ms.append(1e3 * (time.perf_counter() - t0))
        estimates.append(est.map_from_cam if est else None)
        conf.append(est.confidence if est else 0.0)
        gts.append(fr.map_from_cam)
    t_cm, r_deg = frame_errors(estimates, gts)
    return {**summarize(estimates, gts, ms), **published_poses(t_cm, r_deg, np.array(conf), default_min_confidence())}


def row(name: str, camera: str, gt: str, m: dict) -> str:
    return (f"| {name} | {camera} | {gt} | {m['median_translation_cm']:.2f} | "
            f"{m['pct_5cm_5deg']:.1f} | {m['pct_10cm_5deg']:.1f} | "
            f"{m['n_wrong_published']} / {m['n_published']} | {m['ms_per_frame']:.0f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--map", type=Path, default=REPO / "runs/bench_redkitchen/redkitchen.map")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared/data/7scenes-redkitchen")
    ap.add_argument("--estimator", default="auto")
    ap.add_argument("--out", type=Path, default=REPO / "runs/bench_bag_parity")
    ap.add_argument("--no-docs", action="store_true", help="do not rewrite the table in the docs")
    args = ap.parse_args()
    t_start = time.time()
    args.out.mkdir(parents=True, exist_ok=True)
    map_path = args.map
    if not map_path.exists():
        map_path = args.out / "keyframes.map"
        if not map_path.exists():
            cli.main(["map", "build", str(args.data), "--out", str(map_path), "--no-head"])
    bags = {"pinhole": [], "lens": ["--distortion", "plumb_bob:" + ",".join(map(str, LENS.coefficients))],
            "tree": ["--tf-tree", "--storage", "mcap"]}
    for name, options in bags.items():
        if not (args.out / name).exists():
            cli.main(["bag", "export", str(args.data), "--split", "query", "--compressed",
                      "--out", str(args.out / name), *options])
    topic, tree = ["--gt-topic", "/camera/pose"], ["--gt-tf", "map:camera_optical_frame"]
    results = {
        "pinhole": evaluate(args.out / "pinhole", map_path, args.out / "ev_pinhole", args.estimator, topic),
        "lens": evaluate(args.out / "lens", map_path, args.out / "ev_lens", args.estimator, topic),
        "lens ignored": localize_lens_bag(args.out / "lens", map_path, args.estimator, False),
        "lens, undistorted frames": localize_lens_bag(args.out / "lens", map_path, args.estimator, True),
        "tree, pose topic": evaluate(args.out / "tree", map_path, args.out / "ev_tree_topic", args.estimator, topic),
        "tree, --gt-tf": evaluate(args.out / "tree", map_path, args.out / "ev_tree_tf", args.estimator, tree),
    }
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    lens = "plumb_bob " + ", ".join(f"{c:g}" for c in LENS.coefficients)
    table = "\n".join([
        f"Redkitchen query split (250 frames), estimator `{args.estimator}`, map `{map_path.name}`.",
        "",
        "| bag | camera used | ground truth | median cm | 5cm/5° % | 10cm/5° % | wrong / published | ms |",
        "|---|---|---|---|---|---|---|---|",
        row("pinhole frames", "K (D = 0)", "pose topic", results["pinhole"]),
        row(f"through a lens ({lens})", "K and D (the image undistorted, as the node does)", "pose topic", results["lens"]),
        row("the same, images undistorted (cv2.undistort)", "K", "pose topic",
            results["lens, undistorted frames"]),
        row("the same", "K alone (D ignored, as bag eval did before)", "pose topic", results["lens ignored"]),
        row("pinhole, robot TF tree", "K", "pose topic", results["tree, pose topic"]),
        row("the same", "K", "`--gt-tf map:camera_optical_frame` (chained, interpolated)",
            results["tree, --gt-tf"]),
        "", run_stamp(time.time() - t_start)])
    print(table)
    if not args.no_docs:
        replace_block(REPO / "docs/results.md", "bench:bag_parity", table)


if __name__ == "__main__":
    main()
