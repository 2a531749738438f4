"""The ``marepo-ros`` command line: map build, eval."""
from __future__ import annotations

import os

# Spinning OpenMP threads starve each other on small shared machines (2 cores); sleep instead.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

def _load_user_errors() -> tuple[type[Exception], ...]:
    from .dataset import DatasetError
    from .mapfile import MapFileError
    from .networks import EncoderError
    return (DatasetError, MapFileError, EncoderError)


def _device(name: str):
    import torch
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("marepo-ros: error: --device cuda requested but CUDA is not available")
    return torch.device(name)


def cmd_map_build(args) -> int:
    import torch
    from tqdm import tqdm

    from .dataset import SceneDataset
    from .mapfile import save_map
    from .mapping import build_map, posed_images_from_dataset, preset
    from .networks import load_encoder

    device = _device(args.device)
    dataset = SceneDataset(args.dataset)
    images = posed_images_from_dataset(dataset, args.split)
    overrides = {k: v for k, v in (("short_side", args.short_side), ("epochs", args.epochs))
                 if v is not None}
    cfg = preset(args.preset, **overrides)
    encoder = load_encoder(args.encoder, device)
    bars: dict[str, tqdm] = {}

    def progress(stage, done, total, info):
        if stage not in bars:
            desc = {"buffer": "features", "head": "head", "marepo_s_coords": "coords",
                    "marepo_s": "marepo_S"}[stage]
            bars[stage] = tqdm(total=total, desc=f"{desc:8s}",
                               unit="img" if stage in ("buffer", "marepo_s_coords") else "it",
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
    print(f"mapping {dataset.root} ({len(images)} {args.split} frames, preset '{args.preset}', "
          f"{device}, {torch.get_num_threads()} threads)")
    scene_map = build_map(images, encoder, cfg, device=device, progress=progress)
    if args.marepo_s:
        from .marepo_s import marepo_s
        marepo_s(scene_map, images, encoder, device=device, progress=progress,
                 epochs=args.marepo_s_epochs, lr=args.marepo_s_lr)
    size = save_map(scene_map, args.out)
    s = scene_map.stats
    print(f"\nmap written: {args.out}\n"
          f"  frames            {s['frames']}\n"
          f"  features          {s['buffer_features']} (buffer {s['buffer_seconds']:.0f} s)\n"
          f"  head iterations   {s['iterations']} ({s['training_seconds']:.0f} s)\n"
          f"  final loss        {s['final_loss_px']:.2f} px (valid {100 * s['final_valid_fraction']:.1f} %)\n"
          f"  total time        {time.time() - t0:.0f} s\n"
          f"  map size          {size / 1e6:.1f} MB\n"
          f"  encoder           {scene_map.encoder_id}")
    if "marepo_s" in s:
        m = s["marepo_s"]
        print(f"  marepo_S          {m['steps']} steps ({m['seconds']:.0f} s), pose loss on the "
              f"mapping frames {m['loss_before']:.3f} -> {m['loss_after']:.3f}")
    return 0


def _stamp(name: str, index: int) -> float:
    digits = re.findall(r"\d+", name)
    return float(digits[-1]) if digits else float(index)


def cmd_eval(args) -> int:
    from tqdm import tqdm

    from .dataset import SceneDataset
    from .localizer import Localizer, make_estimator
    from .mapfile import load_map
    from .metrics import format_table, frame_errors, summarize, write_tum
    from .networks import load_encoder

    device = _device(args.device)
    scene_map = load_map(args.map, device)
    dataset = SceneDataset(args.dataset)
    frames = dataset.frames(args.split)
    localizer = Localizer(scene_map, load_encoder(args.encoder, device),
                          make_estimator(args.estimator, short_side=scene_map.short_side,
                                         scene_map=scene_map), device=device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results, times = [], []
    for fr in tqdm(frames, desc="localize", unit="img", dynamic_ncols=True):
        image = fr.load_image()
        t0 = time.perf_counter()
        results.append(localizer.localize(image, dataset.K))
        times.append(1e3 * (time.perf_counter() - t0))
    estimates = [est.map_from_cam if est is not None else None for est in results]
    gts = [fr.map_from_cam for fr in frames]
    t_cm, r_deg = frame_errors(estimates, gts)
    rows = [f"{fr.name},{t:.3f},{r:.4f},{est.n_inliers if est else 0},"
            f"{est.inlier_ratio if est else 0:.4f},{ms:.1f}"
            for fr, t, r, est, ms in zip(frames, t_cm, r_deg, results, times)]
    metrics = summarize(estimates, gts, times)
    metrics.update({"estimator": args.estimator, "split": args.split, "map": str(args.map),
                    "dataset": str(dataset.root), "device": str(device)})
    stamps = [_stamp(fr.name, i) for i, fr in enumerate(frames)]
    write_tum(out / "estimate.tum", stamps, estimates)
    write_tum(out / "groundtruth.tum", stamps, gts)
    (out / "per_frame.csv").write_text("name,translation_cm,rotation_deg,inliers,inlier_ratio,ms\n"
                                       + "\n".join(rows) + "\n")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(format_table({args.estimator: metrics}))
    print(f"wrote {out / 'metrics.json'}, estimate.tum, groundtruth.tum, per_frame.csv")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .localizer import ESTIMATORS
    from .mapping import PRESETS

    ap = argparse.ArgumentParser(prog="marepo-ros", description="Visual relocalization: map a "
                                 "scene from posed images, then localize new images in it.")
    sub = ap.add_subparsers(dest="command", required=True)

    mp = sub.add_parser("map", help="build maps").add_subparsers(dest="map_command", required=True)
    b = mp.add_parser("build", help="map a scene folder (rgb/, poses/, intrinsics.txt, ...)")
    b.add_argument("dataset", type=Path, help="scene folder")
    b.add_argument("--out", type=Path, required=True, help="map file to write")
    b.add_argument("--preset", default="fast", choices=list(PRESETS),
                   help="mapping schedule: fast (CPU, minutes) or ace (ACE's GPU schedule)")
    b.add_argument("--split", default="mapping", help="frames to map (default: mapping)")
    b.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    b.add_argument("--encoder", type=Path, default=None, help="encoder weights (default: shipped)")
    b.add_argument("--short-side", type=int, default=None, help="override the preset's image short side")
    b.add_argument("--epochs", type=float, default=None, help="override the preset's passes over the buffer")
    b.add_argument("--marepo-s", action="store_true",
                   help="also fine-tune the marepo regressor on the mapping frames (marepo_S) and "
                        "store it in the map")
    b.add_argument("--marepo-s-epochs", type=float, default=2.0, help="marepo_S passes (default 2)")
    b.add_argument("--marepo-s-lr", type=float, default=1e-5, help="marepo_S learning rate (1e-5)")
    b.set_defaults(func=cmd_map_build)

    e = sub.add_parser("eval", help="localize a split of a scene folder and score it")
    e.add_argument("dataset", type=Path, help="scene folder")
    e.add_argument("--map", type=Path, required=True)
    e.add_argument("--out", type=Path, required=True, help="output folder")
    e.add_argument("--estimator", default="ransac", choices=ESTIMATORS)
    e.add_argument("--split", default="query")
    e.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    e.add_argument("--encoder", type=Path, default=None, help="encoder weights (default: shipped)")
    e.set_defaults(func=cmd_eval)
    return ap


def main(argv: list[str] | None = None) -> int:
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
