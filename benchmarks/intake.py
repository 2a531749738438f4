#!/usr/bin/env python3
"""Frames the relocalization node receives and poses, by image transport, publisher QoS and
rate, over real DDS on this machine.

A node is started (``marepo-ros node``, its defaults: qos_reliability best_available and the
shipped transport profile) with a keyframe map of 25 redkitchen frames; a separate client
process-side ROS participant publishes the query frame ``--frames`` times per row, with its
CameraInfo, the way a driver does: sensor-data QoS (best effort, depth 5) or reliable (depth
10). ``lock-step`` publishes one frame and waits (up to 2 s) for its pose before the next.
``received`` is what reached the node's callback (its ~/status), ``posed`` what came back on
~/pose; at 30 Hz the node poses the newest frame and drops the others as stale (counted).
``--compare-default`` adds rows for the node without the shipped profile (Fast DDS's defaults,
shared memory included), to show what the profile changes.

    .venv/bin/python benchmarks/intake.py [--frames 60] [--compare-default] [--out table.md]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")  # the client's

from geometry_msgs.msg import PoseStamped  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import CameraInfo, CompressedImage, Image  # noqa: E402

from marepo_ros.geometry import scale_intrinsics  # noqa: E402
from marepo_ros.io.dataset import SceneDataset  # noqa: E402
from marepo_ros.ros.conversions import stamp_from_seconds  # noqa: E402
from marepo_ros.ros.replay import NodeLink, NodeProcess, RosSession, wait_for  # noqa: E402

from bench_docs import emit  # noqa: E402  (beside this script)

REPO = Path(__file__).resolve().parents[1]
SCENE = Path(os.environ.get("MAREPO_REDKITCHEN", REPO.parent / "shared/data/7scenes-redkitchen"))
MAPPING = [f"frame-{i:06d}" for i in range(100, 150, 2)]
QUERY = "frame-000150"
NODE = "/relocalization_node"


def build_map(path: Path) -> None:
    """A keyframe map (no head: seconds) of MAPPING."""
    from marepo_ros.io.mapfile import save_map
    from marepo_ros.mapping.build import build_map as build, preset
    from marepo_ros.mapping.frames import posed_images_from_dataset

    ds = SceneDataset(SCENE)
    images = [im for im, fr in zip(posed_images_from_dataset(ds, "all"), ds.frames("all"))
              if fr.name in set(MAPPING)]
    save_map(build(images, None, preset("fast", head=False)), path)


def frames(ds: SceneDataset) -> dict:
    """name -> (message fields maker, K, width, height) for the three transports."""
    rgb = ds.frame(QUERY).load_image()
    big = cv2.resize(rgb, (1280, 960), interpolation=cv2.INTER_LINEAR)[120:840]
    K_big = scale_intrinsics(ds.K, 2.0)
    K_big[1, 2] -= 120
    jpeg = (ds.root / "rgb" / f"{QUERY}.color.jpg").read_bytes()
    return {"raw rgb8 640x480": (rgb, ds.K), "raw rgb8 1280x720": (big, K_big),
            "CompressedImage jpeg 640x480": (jpeg, ds.K)}


class Publisher:
    """Images + CameraInfo into the node's domain with one QoS; poses back."""

    def __init__(self, session: RosSession, *, compressed: bool, best_effort: bool):
        node = session.node
        qos = qos_profile_sensor_data if best_effort else QoSProfile(
            depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.image = node.create_publisher(CompressedImage if compressed else Image,
                                           "/image/compressed" if compressed else "/image", qos)
        self.info = node.create_publisher(CameraInfo, "/camera_info", qos)
        self.posed: set[float] = set()
        self._sub = node.create_subscription(
            PoseStamped, f"{NODE}/pose",
            lambda m: self.posed.add(round(m.header.stamp.sec + 1e-9 * m.header.stamp.nanosec, 6)), 50)
        self._node = node

    def close(self) -> None:
        for entity in (self.image, self.info):
            self._node.destroy_publisher(entity)
        self._node.destroy_subscription(self._sub)

    def send(self, stamp: float, payload, K: np.ndarray) -> None:
        header_stamp = stamp_from_seconds(stamp)
        if isinstance(payload, bytes):
            msg = CompressedImage(format="jpeg", data=payload)
            h, w = 480, 640
        else:
            h, w = payload.shape[:2]
            msg = Image(height=h, width=w, encoding="rgb8", step=w * 3, data=payload.tobytes())
        msg.header.stamp, msg.header.frame_id = header_stamp, "camera"
        info = CameraInfo(width=w, height=h, distortion_model="plumb_bob")
        info.header.stamp, info.header.frame_id = header_stamp, "camera"
        info.k = [float(v) for v in K.reshape(9)]
        info.d = [0.0] * 5
        self.info.publish(info)
        self.image.publish(msg)


def run_row(session, link, payload, K, *, compressed, best_effort, rate, n, t0) -> dict:
    pub = Publisher(session, compressed=compressed, best_effort=best_effort)
    try:
        wait_for(lambda: pub.image.get_subscription_count() and pub.info.get_subscription_count(),
                 30, "the node's inputs")
        link.wait(lambda s: s["publishers"]["image"] >= 1 and s["inputs"]["image"] == (
            "best_effort" if best_effort else "reliable"), 30, "the node's reader to match")
        before = link.next_status()["frames"]
        stamps = [t0 + i / (rate or 30.0) for i in range(n)]
        start = time.monotonic()
        for i, stamp in enumerate(stamps):
            pub.send(stamp, payload, K)
            if rate:
                time.sleep(max(0.0, start + (i + 1) / rate - time.monotonic()))
            else:
                try:
                    wait_for(lambda: round(stamp, 6) in pub.posed, 2.0, "a pose", poll=0.005)
                except Exception:  # noqa: BLE001 - not posed: counted below
                    pass
        time.sleep(1.5)
        after = link.next_status()["frames"]
        d = {k: after[k] - before.get(k, 0) for k in after}
        posed = sum(round(s, 6) in pub.posed for s in stamps)
        return {"sent": n, "received": d["received"], "posed": posed,
                "dropped_stale": d["dropped_stale"], "rejected": d["rejected"],
                "gaps": d["publisher_gaps"]}
    finally:
        pub.close()


def run_node(map_path, tmp, *, compressed, profile, rows, n, payloads) -> list:
    domain = 232 - (os.getpid() % 20)
    env_range = "SUBNET" if profile else "LOCALHOST"  # LOCALHOST: rmw_fastrtps' own transports
    node = NodeProcess(Path(tmp) / f"node_{int(compressed)}_{int(profile)}.log", domain_id=domain,
                       params={"map_path": str(map_path), "status_period": 0.2,
                               "image_transport": "compressed" if compressed else "raw"},
                       discovery_range=env_range)
    session = RosSession("marepo_intake_bench", domain_id=domain)
    out = []
    try:
        link = NodeLink(session, process=node)
        link.wait(lambda s: s["map_loaded"], 120, "the node")
        t0 = 1000.0
        for name, best_effort, rate in rows:
            payload, K = payloads[name]
            r = run_row(session, link, payload, K, compressed=compressed, best_effort=best_effort,
                        rate=rate, n=n if rate != 5 else max(10, n // 3), t0=t0)
            t0 += 1000.0
            r.update(transport=name, qos="best effort" if best_effort else "reliable",
                     rate="lock-step" if rate == 0 else f"{rate} Hz",
                     profile="shipped" if profile else "none (Fast DDS defaults)")
            print(r, flush=True)
            out.append(r)
    finally:
        session.close()
        node.stop()
    return out


def table(results: list) -> str:
    lines = ["| image | publisher QoS | rate | node transport | received / sent | posed | "
             "dropped as stale | est. gaps |", "|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['transport']} | {r['qos']} | {r['rate']} | {r['profile']} | "
                     f"{r['received']}/{r['sent']} ({100 * r['received'] / r['sent']:.0f} %) | "
                     f"{r['posed']} ({100 * r['posed'] / r['sent']:.0f} %) | {r['dropped_stale']} | "
                     f"{r['gaps']} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=60, help="frames per row at 30 Hz and lock-step "
                    "(a third of it at 5 Hz)")
    ap.add_argument("--compare-default", action="store_true")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if not (SCENE / "rgb").is_dir():
        print(f"needs the redkitchen scene at {SCENE} (MAREPO_REDKITCHEN)", file=sys.stderr)
        return 1
    payloads = frames(SceneDataset(SCENE))
    raw = [n for n in payloads if n.startswith("raw")]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        map_path = Path(tmp) / "kitchen_keyframes.map"
        build_map(map_path)
        raw_rows = [(name, be, rate) for name in raw for be in (True, False) for rate in (5, 30)]
        raw_rows.insert(0, (raw[0], True, 0))
        results += run_node(map_path, tmp, compressed=False, profile=True, rows=raw_rows,
                            n=args.frames, payloads=payloads)
        jpeg_rows = [("CompressedImage jpeg 640x480", be, rate) for be in (True, False) for rate in (5, 30)]
        results += run_node(map_path, tmp, compressed=True, profile=True, rows=jpeg_rows,
                            n=args.frames, payloads=payloads)
        if args.compare_default:
            rows = [(raw[0], True, 0), (raw[0], True, 30), (raw[1], True, 30), (raw[0], False, 30)]
            results += run_node(map_path, tmp, compressed=False, profile=False, rows=rows,
                                n=args.frames, payloads=payloads)
    emit(table(results), f"{os.cpu_count()} CPU cores, rmw_fastrtps_cpp, loopback; "
         f"`benchmarks/intake.py --frames {args.frames}"
         f"{' --compare-default' if args.compare_default else ''}`", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
