"""Mapping without poses: poses tracked from depth (``mapping.odometry``) and `map build
--no-poses` on a rendered room whose poses/ folder is removed."""
import shutil

import numpy as np
import pytest

from marepo_ros import cli
from marepo_ros.evaluation.drift import align_poses
from marepo_ros.geometry import pose_error
from marepo_ros.io.dataset import DatasetError, SceneDataset
from marepo_ros.io.mapfile import load_map
from marepo_ros.mapping.frames import posed_images_from_dataset
from marepo_ros.mapping.odometry import OdometryConfig, track_poses
from marepo_ros.models.xfeat import XFeatExtractor
from marepo_ros.synthetic.folders import write_scene_folder
from marepo_ros.synthetic.scene import random_scene


@pytest.fixture(scope="module")
def room(tmp_path_factory):
    """A rendered room with depth, 40 mapping + 8 query frames of 320x240, and its poses."""
    return write_scene_folder(random_scene(7), tmp_path_factory.mktemp("odometry") / "room",
                              n_mapping=40, n_query=8, seed=3, width=320, height=240)


def aligned_errors(est_N44, truth_N44):
    A = align_poses(est_N44, truth_N44)
    return np.array([pose_error(A @ e, t) for e, t in zip(est_N44, truth_N44)])


def test_tracked_poses_follow_the_true_trajectory(room):
    images = posed_images_from_dataset(SceneDataset(room), "mapping")
    truth = np.stack([im.map_from_cam for im in images])
    poses, report = track_poses(images, XFeatExtractor(top_k=1024), OdometryConfig(top_k=1024))
    assert report["located"] == 40 and report["lost"] == 0 and report["keyframes"] >= 5
    np.testing.assert_allclose(poses[0], np.eye(4))            # the map frame: the first camera's
    err = aligned_errors(np.stack(poses), truth)
    # the path is about 2 m long; what is left after one rigid alignment is the odometry's drift
    assert np.median(err[:, 0]) < 0.03 and err[:, 1].max() < 3.0, err


def test_map_build_without_poses_localizes_the_queries(room, tmp_path, capsys):
    """The folder without poses/: `map build --no-poses` maps it; after aligning the estimated
    query trajectory to the truth the queries are within 5 cm / 5 degrees."""
    bare = tmp_path / "bare"
    shutil.copytree(room, bare)
    shutil.rmtree(bare / "poses")
    assert cli.main(["map", "build", str(bare), "--no-head", "--out", str(tmp_path / "m.map")]) == 2
    assert "missing folder 'poses/'" in capsys.readouterr().err
    assert cli.main(["map", "build", str(bare), "--no-poses", "--no-head", "--out", str(tmp_path / "m.map")]) == 0
    out = capsys.readouterr().out
    assert "poses tracked from depth: 40 of 40 located" in out and "refined poses used" in out
    scene_map = load_map(tmp_path / "m.map")
    assert scene_map.stats["pose_tracking"]["located"] == 40
    assert scene_map.stats["feature_map"]["refinement"]["min_gain"] == 0.0     # always
    from marepo_ros.camera import Camera
    from marepo_ros.localization.pipeline import Pipeline, PipelineConfig
    ds = SceneDataset(room)
    pipe = Pipeline(scene_map, PipelineConfig(estimator="points"))
    est, truth = [], []
    for fr in ds.frames("query"):
        e = pipe.localize(fr.load_image(), Camera(ds.K))
        assert e is not None
        est.append(e.map_from_cam)
        truth.append(fr.map_from_cam)
    err = aligned_errors(np.stack(est), np.stack(truth))
    assert np.all(err[:, 0] < 0.05) and np.all(err[:, 1] < 5.0), err


def test_no_poses_needs_depth_and_a_folder(room, tmp_path, capsys):
    assert cli.main(["map", "build", str(room), "--no-poses", "--no-depth", "--no-head",
                     "--out", str(tmp_path / "x.map")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--no-poses tracks the poses from depth: not with --no-depth" in err[0]
    assert not (tmp_path / "x.map").exists()
    images = posed_images_from_dataset(SceneDataset(room, poses=False), "mapping", depth=False)
    assert images[0].map_from_cam is None
    with pytest.raises(ValueError, match="the first image has none"):
        track_poses(images[:2], XFeatExtractor(top_k=256))
    with pytest.raises(DatasetError, match="missing folder 'rgb/'"):
        SceneDataset(tmp_path, poses=False)
