#!/usr/bin/env python3
"""A live soak of the relocalization node: a bag looped over DDS at its recorded speed for
``--minutes``, with per-minute figures that should stay flat: frames received and localized,
localized fraction, mean latency, the node's resident memory, errors.

By default the bag is the redkitchen query split (250 frames at 30 Hz, exported once into a
temporary folder) and the map a keyframe map of its first 100 mapping frames (seconds to
build); the node runs with its defaults (best_available, the shipped transport profile) and
the bag is played with reliable QoS, as ``marepo-ros replay`` does.

    .venv/bin/python benchmarks/soak.py --minutes 30 [--bag BAG --map MAP] [--out soak.md]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")  # the player's

from marepo_ros.io.bag import IMAGE_TOPIC, CAMERA_INFO_TOPIC, export_bag  # noqa: E402
from marepo_ros.io.dataset import SceneDataset  # noqa: E402
from marepo_ros.ros.replay import (BagPlayer, NodeLink, NodeProcess, RosSession,  # noqa: E402
                                   fresh_domain_id)

from bench_docs import emit  # noqa: E402  (beside this script)

REPO = Path(__file__).resolve().parents[1]
SCENE = Path(os.environ.get("MAREPO_REDKITCHEN", REPO.parent / "shared/data/7scenes-redkitchen"))


def rss_mb(pid: int) -> float:
    """Resident memory of a process (MB), from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def default_inputs(tmp: Path) -> tuple[Path, Path]:
    from marepo_ros.io.mapfile import save_map
    from marepo_ros.mapping.build import build_map, preset
    from marepo_ros.mapping.frames import posed_images_from_dataset

    ds = SceneDataset(SCENE)
    bag, map_path = tmp / "query_bag", tmp / "keyframes.map"
    export_bag(ds, bag, split="query", rate_hz=30.0, progress=False)
    images = posed_images_from_dataset(ds, "mapping")[:100]
    save_map(build_map(images, None, preset("fast", head=False)), map_path)
    return bag, map_path


def soak(bag: Path, map_path: Path, minutes: float, tmp: Path) -> list[dict]:
    domain = fresh_domain_id()
    node = NodeProcess(tmp / "node.log", domain_id=domain,
                       params={"map_path": str(map_path), "status_period": 0.5},
                       remaps={"image": IMAGE_TOPIC, "camera_info": CAMERA_INFO_TOPIC})
    session = RosSession("marepo_soak", domain_id=domain)
    rows = []
    try:
        link = NodeLink(session, process=node)
        link.wait(lambda s: s["map_loaded"], 120, "the node")
        player = BagPlayer(session, bag, [IMAGE_TOPIC, CAMERA_INFO_TOPIC])
        player.wait_for_subscribers()
        start = time.monotonic()
        minute_start, before, loops = start, link.next_status(), 0
        while time.monotonic() - start < 60 * minutes:
            player.play()
            loops += 1
            now = time.monotonic()
            if now - minute_start >= 60 or now - start >= 60 * minutes:
                status = link.next_status()
                f, b = status["frames"], before["frames"]
                received = f["received"] - b["received"]
                localized = f["localized"] - b["localized"]
                rows.append({"minute": len(rows) + 1, "seconds": round(now - minute_start),
                             "loops": loops, "received": received, "localized": localized,
                             "localized_pct": 100 * localized / max(received, 1),
                             "dropped_stale": f["dropped_stale"] - b["dropped_stale"],
                             "errors": f["errors"] - b["errors"],
                             "latency_ms": status["latency_ms_mean"], "rss_mb": rss_mb(node.proc.pid)})
                print(rows[-1], flush=True)
                minute_start, before, loops = now, status, 0
        if not node.alive():
            raise RuntimeError(f"the node died: {node.last_line()}")
    finally:
        session.close()
        node.stop()
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| minute | seconds (whole loops) | frames received | localized | localized % | "
             "dropped as stale | errors | mean latency ms | node RSS MB |",
             "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['minute']} | {r['seconds']} | {r['received']} | {r['localized']} | {r['localized_pct']:.1f} | "
              f"{r['dropped_stale']} | {r['errors']} | {r['latency_ms']:.0f} | {r['rss_mb']:.0f} |"
              for r in rows]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--bag", type=Path)
    ap.add_argument("--map", type=Path)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.bag and args.map:
            bag, map_path = args.bag, args.map
        elif (SCENE / "rgb").is_dir():
            bag, map_path = default_inputs(tmp)
        else:
            print(f"needs --bag and --map, or the redkitchen scene at {SCENE}", file=sys.stderr)
            return 1
        rows = soak(bag, map_path, args.minutes, tmp)
    emit(table(rows), f"{os.cpu_count()} CPU cores; `benchmarks/soak.py --minutes {args.minutes:g}`",
         args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
