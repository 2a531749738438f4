"""Shared fixtures: the real evaluation scene (when present) and small rendered scenes."""
from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch starts its OpenMP threads

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))

REDKITCHEN = Path(os.environ.get(
    "MAREPO_REDKITCHEN", Path(__file__).resolve().parents[1].parent / "shared/data/7scenes-redkitchen"))


@pytest.fixture(scope="session")
def redkitchen() -> Path:
    if not (REDKITCHEN / "rgb").is_dir():
        pytest.skip(f"evaluation scene not found at {REDKITCHEN} (set MAREPO_REDKITCHEN)")
    return REDKITCHEN
