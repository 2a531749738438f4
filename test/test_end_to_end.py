"""A small map + localize on real frames with the shipped encoder (the default test run)."""
import numpy as np
import pytest
from conftest import KITCHEN_MAPPING, KITCHEN_QUERIES

from marepo_ros.camera import Camera
from marepo_ros.geometry import pose_error
from marepo_ros.io.dataset import SceneDataset
from marepo_ros.io.mapfile import load_map
from marepo_ros.localization.pipeline import Pipeline, PipelineConfig
from marepo_ros.models.networks import load_encoder


STAGES = {"poselib": {"pnp"}, "torch": {"hypotheses", "refine"},
          "hybrid": {"scr", "extraction", "features"}, "grr+kf": {"scr", "extraction", "features"}}


@pytest.mark.parametrize("backend", ["poselib", "torch", "hybrid", "grr+kf"])
def test_map_and_localize_real_frames(redkitchen, kitchen_map, backend):
    """The head with either RANSAC (poselib: the CPU default; torch: batched, for GPUs),
    ``hybrid`` (head + keyframes), and ``grr+kf`` (the grr regressor's pose refined on the
    keyframes near it)."""
    ds = SceneDataset(redkitchen)
    scene_map = load_map(kitchen_map)
    assert scene_map.stats["frames"] == len(KITCHEN_MAPPING)
    config = (PipelineConfig(backend) if backend in ("hybrid", "grr+kf") else
              PipelineConfig("ransac", {"backend": backend}))
    pipeline = Pipeline(scene_map, config)
    errors = []
    for name in KITCHEN_QUERIES:
        fr = ds.frame(name)
        est = pipeline.localize(fr.load_image(), Camera(ds.K))
        assert est is not None, name
        assert set(est.timings_ms) >= {"encoder", "head", "total"} | STAGES[backend]
        errors.append(pose_error(est.map_from_cam, fr.map_from_cam))
    t_cm = 100 * np.array([e[0] for e in errors])
    r_deg = np.array([e[1] for e in errors])
    print(f"\nmapped {len(KITCHEN_MAPPING)} frames in {scene_map.stats['total_seconds']:.0f} s; "
          "query errors " + ", ".join(f"{t:.1f} cm/{r:.1f} deg" for t, r in zip(t_cm, r_deg)))
    assert np.median(t_cm) < 15 and np.median(r_deg) < 5  # a random encoder gives metres
    if backend in ("hybrid", "grr+kf"):                     # the keyframes' accuracy
        assert t_cm.max() < 5 and r_deg.max() < 2


def test_the_cascade_consults_the_head_only_below_its_certainty(redkitchen, kitchen_map):
    """``cascade``: a points pose it is certain of is final (the head never
    runs: no encoder stage); below it, the frame goes through hybrid's check, the same pose
    hybrid gives."""
    ds = SceneDataset(redkitchen)
    scene_map = load_map(kitchen_map)
    hybrid = Pipeline(scene_map, PipelineConfig("hybrid"))
    points = Pipeline(scene_map, PipelineConfig("points"))
    never = Pipeline(scene_map, PipelineConfig("cascade", {"certain_probability": 0.0}))
    always = Pipeline(scene_map, PipelineConfig("cascade", {"certain_probability": 2.0}))
    for name in KITCHEN_QUERIES:
        fr = ds.frame(name)
        image, camera = fr.load_image(), Camera(ds.K)
        alone, sure = points.localize(image, camera), never.localize(image, camera)
        assert "encoder" not in sure.timings_ms and "scr" not in sure.timings_ms
        np.testing.assert_allclose(sure.map_from_cam, alone.map_from_cam, atol=1e-9)
        checked, both = always.localize(image, camera), hybrid.localize(image, camera)
        assert {"encoder", "head", "scr", "extraction", "features"} <= set(checked.timings_ms)
        np.testing.assert_allclose(checked.map_from_cam, both.map_from_cam, atol=1e-6)
        # the same decision; each estimator's own calibration maps it to its probability
        assert checked.evidence["raw_confidence"] == pytest.approx(both.evidence["raw_confidence"])
        assert pose_error(checked.map_from_cam, fr.map_from_cam)[0] < 0.05


def test_pipeline_refuses_map_of_another_encoder(tmp_path):
    from marepo_ros.io.mapfile import MapFileError, SceneMap
    from marepo_ros.models.networks import Encoder, Head

    m = SceneMap(head=Head(), encoder_id="0000000000000000", short_side=480)
    with pytest.raises(MapFileError, match="encoder"):
        Pipeline(m, PipelineConfig("ransac"), encoder=Encoder())
    with pytest.raises(MapFileError, match="encoder"):   # the map's own (ace) is not this one
        Pipeline(m, PipelineConfig("ransac"))


def test_a_head_on_the_xfeat_encoder_localizes_and_other_encoders_are_refused(redkitchen, tmp_path):
    """``--encoder xfeat``: the head reads XFeat's dense 64-d features; the map names its
    encoder, and the ACE encoder is refused for it in one line."""
    from marepo_ros.io.mapfile import MapFileError, save_map
    from marepo_ros.mapping.build import build_map, preset
    from marepo_ros.mapping.frames import posed_images_from_dataset

    ds = SceneDataset(redkitchen)
    names = set(KITCHEN_MAPPING)
    images = [im for im, fr in zip(posed_images_from_dataset(ds, "all"), ds.frames("all"))
              if fr.name in names]
    cfg = preset("fast", samples_per_image=800, buffer_size=20_000, epochs=30.0, features=None)
    save_map(build_map(images, load_encoder("xfeat"), cfg), tmp_path / "xfeat.map")
    scene_map = load_map(tmp_path / "xfeat.map")
    assert scene_map.encoder == "xfeat" and scene_map.head.res3_conv1.in_channels == 64
    pipeline = Pipeline(scene_map, PipelineConfig("ransac"))    # the map names its encoder
    errors = [pose_error(pipeline.localize(ds.frame(n).load_image(), Camera(ds.K)).map_from_cam,
                         ds.frame(n).map_from_cam) for n in KITCHEN_QUERIES]
    print("xfeat encoder: " + ", ".join(f"{100 * t:.1f} cm/{r:.1f} deg" for t, r in errors))
    # 25 frames, 585 steps: 9-25 cm here (a random encoder gives metres; redkitchen in full:
    # docs/results.md)
    assert np.median([t for t, _ in errors]) < 0.3 and np.median([r for _, r in errors]) < 5
    with pytest.raises(MapFileError, match="built with encoder xfeat .* loaded encoder is ace"):
        Pipeline(scene_map, PipelineConfig("ransac", encoder="ace"))
