"""``marepo-ros demo`` (``make demo``): the whole product on a fresh clone, with no data of its
own, in a few minutes on a CPU:

    1. render a small textured room: a mapping drive through it and a query drive that passes
       again along part of the mapping drive, a little off its poses (exact poses)
    2. export them as two rosbag2 folders with ``marepo-ros bag export``
    3. start the relocalization node without a map (in a ROS domain of its own)
    4. map through the node's services: ~/start_mapping, play the mapping bag (images,
       camera_info, and the ground-truth poses on the node's ``mapping_pose`` topic),
       ~/stop_mapping, then follow ~/status ``mapping.progress`` until the map is loaded
    5. replay the query bag live at 1x against the same node and score it
       (``marepo-ros replay``'s scoring and report)

Everything lands in one output folder; a folder the demo made before is replaced.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

from tqdm import tqdm

from ..evaluation.scoring import summary_text
from ..io.bag import CAMERA_INFO_TOPIC, IMAGE_TOPIC, POSE_TOPIC, BagFrames, export_bag
from ..io.dataset import SceneDataset
from ..synthetic.folders import write_revisit_folder
from ..synthetic.scene import random_scene
from .replay import (BagPlayer, NodeLink, NodeProcess, ReplayError, RosSession, fresh_domain_id,
                     node_inputs, play_and_score, wait_until_accounted)

SCENE_SEED, PATH_SEED = 3, 5
N_MAPPING, N_QUERY = 120, 30
WIDTH, HEIGHT = 320, 240          # the fast preset's short side: no resizing anywhere
BAG_RATE_HZ = 5.0                 # the rendered path moves 7 cm per frame: 0.35 m/s at 5 Hz
MAPPING_PARAMS = {"min_keyframes": 10, "mapping_epochs": 100.0, "mapping_threads": 2}
MARKER = ".marepo-demo"           # marks a folder the demo made (and may replace)
BUILD_TIMEOUT_S = 900


def _fresh_folder(out: Path) -> Path:
    """``out``, emptied when the demo made it before; ReplayError when it holds anything else."""
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            raise ReplayError(f"{out} exists and was not made by the demo: choose another --out")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).touch()
    return out


def _step(text: str) -> None:
    print(f"\n== {text}", flush=True)


def _export(scene: Path, split: str, out: Path) -> BagFrames:
    print(f"$ marepo-ros bag export {scene} --split {split} --rate {BAG_RATE_HZ:g} --out {out}",
          flush=True)
    export_bag(SceneDataset(scene), out, split=split, rate_hz=BAG_RATE_HZ)
    return BagFrames(out, gt_topic=POSE_TOPIC)


def map_through_services(session: RosSession, link: NodeLink, bag: BagFrames) -> str:
    """Build a map with the node's services from ``bag`` (images, camera_info, ground-truth
    poses); returns the path of the map the node loaded."""
    print(f"$ call {link.name}/start_mapping: {link.trigger('start_mapping')}")
    player = BagPlayer(session, bag.path, [IMAGE_TOPIC, CAMERA_INFO_TOPIC, POSE_TOPIC])
    player.wait_for_subscribers()
    before = link.next_status()["frames"]
    with tqdm(total=len(bag), desc="mapping bag", unit="img", dynamic_ncols=True) as bar:
        player.play(bar)
    status = wait_until_accounted(link, before, player.n_images, timeout=60)
    print(f"keyframes collected: {status['mapping']['keyframes']} of {player.n_images} frames")
    print(f"$ call {link.name}/stop_mapping: {link.trigger('stop_mapping')}")
    with tqdm(total=100, desc="map build", unit="%", dynamic_ncols=True,
              bar_format="{l_bar}{bar}| {n:.0f}/{total} % [{elapsed}]") as bar:
        def built(s: dict) -> bool:
            bar.update(100 * s["mapping"]["progress"] - bar.n)
            return s["mapping"]["state"] == "idle"
        status = link.wait(built, BUILD_TIMEOUT_S, "the map build")
    if status["mapping"]["error"] or not status["map_loaded"]:
        raise ReplayError(f"the map build failed: {status['mapping']['error'] or status['map_error']}")
    print(status["mapping"]["message"])
    return status["map_path"]


def demo(out: str | Path = "runs/demo") -> int:
    """Run the demo into ``out`` (see the module docstring); prints the scores and returns 0."""
    t0 = time.monotonic()
    out = _fresh_folder(Path(out))
    _step(f"1/5 render a room: {N_MAPPING} mapping frames + {N_QUERY} query frames of a second "
          f"pass, {WIDTH}x{HEIGHT}")
    scene = write_revisit_folder(random_scene(SCENE_SEED), out / "scene", n_mapping=N_MAPPING,
                                 n_query=N_QUERY, width=WIDTH, height=HEIGHT, seed=PATH_SEED)
    print(f"scene folder: {scene} ({time.monotonic() - t0:.0f} s)")
    _step("2/5 export the mapping and query frames as rosbag2")
    mapping_bag = _export(scene, "mapping", out / "mapping_bag")
    query_bag = _export(scene, "query", out / "query_bag")

    _step("3/5 start the relocalization node without a map")
    domain = fresh_domain_id()
    params, remaps = node_inputs(mapping_bag)
    params.update(MAPPING_PARAMS, map_dir=str((out / "maps").resolve()))
    remaps["mapping_pose"] = POSE_TOPIC
    print("$ marepo-ros node --ros-args " + " ".join(
        [f"-p {k}:={v}" for k, v in params.items()] + [f"-r {k}:={v}" for k, v in remaps.items()])
        + f"   (ROS_DOMAIN_ID={domain}, log: {out / 'node.log'})")
    process = NodeProcess(out / "node.log", domain_id=domain, params=params, remaps=remaps)
    session = RosSession("marepo_demo", domain_id=domain)
    try:
        link = NodeLink(session, process=process)
        estimator = link.wait(lambda s: True, 120, "the node's first status")["estimator"]
        _step("4/5 map the scene through the node's services")
        t_map = time.monotonic()
        map_path = map_through_services(session, link, mapping_bag)
        t_map = time.monotonic() - t_map
        _step("5/5 replay the query bag live at 1x and score it")
        replay_out = out / "replay"
        metrics = play_and_score(session, link, query_bag, replay_out, rate=1.0, meta={
            "map": map_path, "estimator": estimator, "node": "started by the demo"})
    finally:
        session.close()
        process.stop()
    print(summary_text(metrics, replay_out))
    f, loc = metrics["frames"], metrics["localized_only"]
    print(f"\ndemo done in {time.monotonic() - t0:.0f} s (mapping through the services "
          f"{t_map:.0f} s): {100 * metrics['localized_fraction']:.0f} % of the query frames "
          f"localized live ({f['dropped_stale']} dropped as stale, {f['rejected']} rejected), "
          f"median error {loc['median_translation_cm']:.1f} cm / {loc['median_rotation_deg']:.2f} deg"
          f"\nreport: {replay_out / 'report.md'}")
    return 0
