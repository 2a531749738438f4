"""A small map + localize on real frames with the shipped encoder (the default test run)."""
import time

import numpy as np
import pytest

from marepo_ros.dataset import SceneDataset
from marepo_ros.geometry import pose_error
from marepo_ros.localizer import Localizer, make_estimator
from marepo_ros.mapfile import load_map, save_map
from marepo_ros.mapping import PosedImage, build_map, posed_images_from_dataset, preset
from marepo_ros.networks import load_encoder

# frames 100-149 are mapping frames; 150-199 the first query block of the split
MAPPING = [f"frame-{i:06d}" for i in range(100, 150, 2)]
QUERIES = ["frame-000150", "frame-000152", "frame-000155"]


def test_map_and_localize_real_frames(redkitchen, tmp_path):
    ds = SceneDataset(redkitchen)
    names = set(MAPPING)
    images = [im for im, fr in zip(posed_images_from_dataset(ds, "all"), ds.frames("all"))
              if fr.name in names]
    assert len(images) == len(MAPPING) and all(isinstance(i, PosedImage) for i in images)
    encoder = load_encoder()
    cfg = preset("fast", samples_per_image=800, buffer_size=20_000, epochs=30.0)
    t0 = time.time()
    scene_map = build_map(images, encoder, cfg)
    save_map(scene_map, tmp_path / "kitchen.map")
    localizer = Localizer(load_map(tmp_path / "kitchen.map"), encoder,
                          make_estimator("ransac", short_side=cfg.short_side))
    errors = []
    for name in QUERIES:
        fr = ds.frame(name)
        est = localizer.localize(fr.load_image(), ds.K)
        assert est is not None, name
        assert set(est.timings_ms) >= {"encoder", "head", "hypotheses", "refine", "total"}
        errors.append(pose_error(est.map_from_cam, fr.map_from_cam))
    t_cm = 100 * np.array([e[0] for e in errors])
    r_deg = np.array([e[1] for e in errors])
    print(f"\nmapped {len(images)} frames in {time.time() - t0:.0f} s; query errors "
          + ", ".join(f"{t:.1f} cm/{r:.1f} deg" for t, r in zip(t_cm, r_deg)))
    assert np.median(t_cm) < 15 and np.median(r_deg) < 5  # a random encoder gives metres


def test_localizer_refuses_map_of_another_encoder(tmp_path):
    from marepo_ros.mapfile import MapFileError, SceneMap
    from marepo_ros.networks import Encoder, Head

    m = SceneMap(head=Head(), encoder_id="0000000000000000", short_side=480)
    with pytest.raises(MapFileError, match="encoder"):
        Localizer(m, Encoder(), make_estimator("ransac"))
