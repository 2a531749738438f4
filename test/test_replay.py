"""`marepo-ros replay`: a rendered scene's query bag played over real DDS to a real node process
(started by replay, or already running and attached to), every frame accounted for, the poses
scored against the bag's ground truth."""
from __future__ import annotations

import json

import pytest
from node_harness import fresh_domain
from rosbags.highlevel import AnyReader

from marepo_ros import cli
from marepo_ros.geometry import pose_error, pose_from_quat
from marepo_ros.io.bag import BagFrames, export_bag
from marepo_ros.io.dataset import SceneDataset
from marepo_ros.io.mapfile import save_map
from marepo_ros.mapping.build import build_map, preset
from marepo_ros.mapping.frames import posed_images_from_dataset
from marepo_ros.models.networks import load_encoder
from marepo_ros.ros.replay import NodeProcess, ReplayError, replay
from marepo_ros.synthetic.folders import write_scene_folder
from marepo_ros.synthetic.scene import random_scene

N_QUERY = 12
BAG_RATE_HZ = 5.0  # stamps 0.2 s apart; played at REPLAY_RATE x that


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """(query bag, map file) of a small rendered room: a rough map of 20 frames (seconds to
    build; the scoring, not the map, is under test), 12 query frames."""
    root = tmp_path_factory.mktemp("replay")
    ds = SceneDataset(write_scene_folder(random_scene(21), root / "scene", n_mapping=20,
                                         n_query=N_QUERY, width=160, height=120, seed=4))
    cfg = preset("fast", short_side=120, samples_per_image=300, buffer_size=6000, epochs=6.0,
                 batch_size=256)
    save_map(build_map(posed_images_from_dataset(ds, "mapping"), load_encoder(), cfg), root / "scene.map")
    export_bag(ds, root / "query_bag", split="query", rate_hz=BAG_RATE_HZ, progress=False)
    return root / "query_bag", root / "scene.map"


def check_replay(metrics: dict, out) -> None:
    f = metrics["frames"]
    assert f["played"] == N_QUERY and f["adds_up"]
    assert f["localized"] + f["rejected"] + f["dropped_stale"] + f["lost_in_transport"] == N_QUERY
    assert f["lost_in_transport"] == 0  # reliable QoS, deep enough
    assert f["localized"] >= 3
    assert metrics["n_frames"] == N_QUERY and metrics["n_localized"] == f["localized"]
    assert metrics["latency_ms"]["median"] > 0
    assert json.loads((out / "metrics.json").read_text())["frames"] == f
    assert len((out / "estimate.tum").read_text().splitlines()) == f["localized"]
    assert "## Live replay" in (out / "report.md").read_text()
    assert all((out / p).stat().st_size > 0 for p in ("trajectory.png", "error_cdf.png", "per_frame.csv"))
    with AnyReader([out / "outputs"]) as reader:
        counts = {c.topic: c.msgcount for c in reader.connections}
    assert counts["/relocalization_node/pose"] == f["localized"]
    assert counts["/relocalization_node/pose_with_covariance"] == f["localized"]
    assert counts["/relocalization_node/status"] > 0


def check_scores(bag, out) -> None:
    """per_frame.csv's errors are those of the recorded poses against the bag's ground truth
    of the same stamp."""
    frames = BagFrames(bag, gt_topic="/camera/pose")
    gt = dict(zip(frames.stamps_ns.tolist(), frames.map_from_cam))
    with AnyReader([out / "outputs"]) as reader:
        poses = {(m := reader.deserialize(raw, c.msgtype)).header.stamp.sec * 10**9
                 + m.header.stamp.nanosec: m.pose for c, _, raw in reader.messages()
                 if c.topic == "/relocalization_node/pose"}
    rows = [line.split(",") for line in (out / "per_frame.csv").read_text().splitlines()[1:]]
    assert len(rows) == N_QUERY and sum(r[1] == "1" for r in rows) == len(poses)
    for stamp, localized, t_cm, r_deg, _ in rows:
        ns = round(float(stamp) * 1e9)
        if localized == "1":
            p, q = poses[ns].position, poses[ns].orientation
            t, r = pose_error(pose_from_quat([p.x, p.y, p.z], [q.x, q.y, q.z, q.w]), gt[ns])
            assert float(t_cm) == pytest.approx(100 * t, abs=1e-3)
            assert float(r_deg) == pytest.approx(r, abs=1e-3)
            assert float(t_cm) < 200  # a room-sized scene: a pose, not garbage
        else:
            assert t_cm == "inf"


def test_replay_starts_a_node_and_scores_it(scene, tmp_path, capsys):
    bag, map_path = scene
    out = tmp_path / "out"
    assert cli.main(["replay", str(bag), "--map", str(map_path), "--gt-topic", "/camera/pose",
                     "--rate", "2", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    print(text)
    assert "(adds up)" in text and "latency" in text and str(out / "report.md") in text
    metrics = json.loads((out / "metrics.json").read_text())
    check_replay(metrics, out)
    check_scores(bag, out)
    assert (out / "node.log").is_file()


def test_replay_attaches_to_a_running_node_and_counts_drops(scene, tmp_path, monkeypatch):
    """A burst (played at 50x) against a node already running in this ROS_DOMAIN_ID: the node
    keeps only the newest frame, so most are dropped as stale, and it all adds up."""
    bag, map_path = scene
    domain = fresh_domain()
    monkeypatch.setenv("ROS_DOMAIN_ID", str(domain))
    node = NodeProcess(tmp_path / "node.log", domain_id=domain, params={
        "map_path": str(map_path), "qos_reliability": "reliable", "qos_depth": 100,
        "status_period": 0.2}, remaps={"image": "/camera/image_raw", "camera_info": "/camera/camera_info"})
    try:
        metrics = replay(bag, map_path, tmp_path / "out", rate=50.0, gt_topic="/camera/pose",
                         attach=True, progress=False)
    finally:
        node.stop()
    f = metrics["frames"]
    print("attached replay at 50x:", f)
    assert f["played"] == N_QUERY and f["adds_up"] and f["lost_in_transport"] == 0
    assert f["dropped_stale"] > 0 and f["localized"] >= 1
    assert metrics["node"] == "attached"


def test_replay_attach_without_a_node_says_so(scene, tmp_path, monkeypatch):
    """--attach in a domain where no node runs: a bounded wait, then one error naming the
    likely cause (the default wait when attaching is 30 s; shortened here)."""
    bag, _ = scene
    monkeypatch.setenv("ROS_DOMAIN_ID", str(fresh_domain()))
    with pytest.raises(ReplayError, match="timed out after 2 s .* is it running in this ROS_DOMAIN_ID"):
        replay(bag, None, tmp_path / "out", gt_topic="/camera/pose", attach=True, progress=False,
               node_timeout=2.0)


def test_replay_errors_are_one_line(scene, tmp_path, capsys):
    bag, map_path = scene
    cases = [(["--image-topic", "/nope"], "no topic '/nope'"),
             (["--gt-tf", "map"], "--gt-tf must be PARENT:CHILD"),
             (["--rate", "0"], "--rate must be positive")]
    for extra, expected in cases:
        gt = [] if "--gt-tf" in extra else ["--gt-topic", "/camera/pose"]
        assert cli.main(["replay", str(bag), "--map", str(map_path), "--out", str(tmp_path), *gt,
                         *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and expected in err[0], err
    assert cli.main(["replay", str(bag), "--map", str(tmp_path / "none.map"), "--gt-topic",
                     "/camera/pose", "--out", str(tmp_path)]) == 2
    assert "map file not found" in capsys.readouterr().err


def test_demo_replaces_only_its_own_folder(tmp_path):
    from marepo_ros.ros.demo import MARKER, _fresh_folder

    mine = _fresh_folder(tmp_path / "demo")
    (mine / "old").write_text("x")
    assert _fresh_folder(mine) == mine and not (mine / "old").exists() and (mine / MARKER).is_file()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "data").write_text("keep")
    with pytest.raises(ReplayError, match="not made by the demo"):
        _fresh_folder(tmp_path / "other")
    assert (tmp_path / "other" / "data").read_text() == "keep"


def test_player_publishes_the_bags_time_on_clock(scene):
    """--clock: /clock carries the bag's time from before the first message to after the
    last, advancing with the playback, so that use_sim_time nodes run on it."""
    from rosgraph_msgs.msg import Clock

    from marepo_ros.ros.replay import BagPlayer, RosSession, wait_for
    bag, _ = scene
    domain = fresh_domain()
    player_session, listener = RosSession("clock_player", domain_id=domain), RosSession("clock_listener", domain_id=domain)
    ticks = []
    listener.node.create_subscription(Clock, "/clock", lambda m: ticks.append(m.clock.sec + 1e-9 * m.clock.nanosec), 100)
    player = BagPlayer(player_session, bag, ["/camera/image_raw"], rate=4.0, clock=True)
    try:
        with AnyReader([bag]) as reader:
            start, end = reader.start_time * 1e-9, reader.end_time * 1e-9
        wait_for(lambda: ticks, 30, "/clock")
        assert ticks[-1] == start  # before playing: the bag's first time
        player.play()
        wait_for(lambda: ticks[-1] > end, 5, "/clock past the bag's end")
        assert all(b >= a for a, b in zip(ticks, ticks[1:]))
    finally:
        player.close()
        player_session.close()
        listener.close()
