"""Shared fixtures: the real evaluation scene (when present) and small rendered scenes."""
from __future__ import annotations

import os
from pathlib import Path

# Tests, and the node processes they start, keep torch's OpenMP threads waiting passively (as
# before the package's short spin): node tests share 2 cores between the test and the node.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, os.cpu_count() or 1))

REDKITCHEN = Path(os.environ.get(
    "MAREPO_REDKITCHEN", Path(__file__).resolve().parents[1].parent / "shared/data/7scenes-redkitchen"))


def jittered_views(scene, seed: int, n: int) -> list:
    """n exact regressor samples of a rendered scene: random intrinsics and view, then marepo's
    rigid jitter (``training.regressor_data``)."""
    import numpy as np
    from marepo_ros.models.regressor_batch import random_rigid, rigid_jitter
    from marepo_ros.training.regressor_data import random_intrinsics, random_view

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        K, w, h = random_intrinsics(rng)
        out.append(rigid_jitter(random_view(scene, rng, K, w, h), random_rigid(rng)))
    return out


@pytest.fixture(scope="session")
def redkitchen() -> Path:
    if not (REDKITCHEN / "rgb").is_dir():
        pytest.skip(f"evaluation scene not found at {REDKITCHEN} (set MAREPO_REDKITCHEN)")
    return REDKITCHEN


# A small real map: 25 mapping frames of the evaluation scene (frames 100-148), and query
# frames from the first query block (150-199) of its split.
KITCHEN_MAPPING = [f"frame-{i:06d}" for i in range(100, 150, 2)]
KITCHEN_QUERIES = ["frame-000150", "frame-000152", "frame-000155"]


@pytest.fixture(scope="session")
def kitchen_map(redkitchen, tmp_path_factory) -> Path:
    """Map file of KITCHEN_MAPPING built with the shipped encoder (once per test session)."""
    from marepo_ros.io.dataset import SceneDataset
    from marepo_ros.io.mapfile import save_map
    from marepo_ros.mapping.build import build_map, preset
    from marepo_ros.mapping.frames import posed_images_from_dataset
    from marepo_ros.models.networks import load_encoder

    ds = SceneDataset(redkitchen)
    names = set(KITCHEN_MAPPING)
    images = [im for im, fr in zip(posed_images_from_dataset(ds, "all"), ds.frames("all"))
              if fr.name in names]
    cfg = preset("fast", samples_per_image=800, buffer_size=20_000, epochs=30.0)
    path = tmp_path_factory.mktemp("kitchen") / "kitchen.map"
    save_map(build_map(images, load_encoder(), cfg), path)
    return path


def pytest_terminal_summary(terminalreporter):
    """Say plainly when the tests on the real evaluation scene did not run (no ../shared)."""
    skipped = [r for r in terminalreporter.stats.get("skipped", [])
               if "evaluation scene not found" in str(r.longrepr)]
    if skipped:
        terminalreporter.write_sep("-", f"{len(skipped)} tests on the real evaluation scene were "
                                   f"SKIPPED: {REDKITCHEN} not found (set MAREPO_REDKITCHEN); the "
                                   f"rendered-data tests, the node end to end among them "
                                   f"(test_replay, test_mapping), ran", yellow=True, bold=True)
