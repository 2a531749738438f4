"""Live mapping with an aligned depth stream: keyframes keep their depth on the stored grid and
the map build uses it like a dataset's (mapping.keyframes, mapping.background)."""
import numpy as np
import pytest

from marepo_ros.geometry import make_pose
from marepo_ros.mapping.background import posed_images
from marepo_ros.mapping.keyframes import KeyframeCollector


def test_depth_is_shrunk_with_its_keyframe_and_reaches_the_build():
    collector = KeyframeCollector(store_short_side=240)
    K = np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]])
    image = np.zeros((480, 640, 3), np.uint8)
    depth = np.full((480, 640), 2.0, np.float32)
    depth[:, 320:] = 0.0  # invalid on the right half
    collector.keep(image, K, make_pose(np.eye(3), [0, 0, 0]), depth)
    collector.keep(image, K, make_pose(np.eye(3), [0.1, 0, 0]))  # a keyframe without depth
    first, second = collector.keyframes
    assert first.depth.shape == first.grey.shape == (240, 320)
    assert set(np.unique(first.depth)) == {0.0, 2.0} and np.all(first.depth[:, :160] == 2.0)
    assert second.depth is None and collector.counts["with_depth"] == 1
    images = posed_images([(k.grey, k.K, k.map_from_cam, k.depth) for k in collector.keyframes])
    assert images[0].load_depth() is first.depth and images[1].load_depth() is None
    with pytest.raises(ValueError, match="depth is 320x240 but its image is 640x480"):
        collector.keep(image, K, np.eye(4), np.zeros((240, 320), np.float32))
