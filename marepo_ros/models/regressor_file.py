"""Regressor files: a marepo ``PoseRegressor`` or a grr ``GeometryRegressor`` as a dict of
config, fp16 weights and error statistics (``regressor_dict``), saved and loaded by kind, and
the shipped ones (``weights/REGRESSOR_CARD.md``, ``GRR_CARD.md``). Above both model modules, so
neither imports the other back."""
from __future__ import annotations

from dataclasses import asdict
from importlib import resources
from pathlib import Path

import torch

from .grr import GeometryRegressor
from .regressor import DEFAULT_ERROR_SIGMA, PoseRegressor, RegressorConfig


def save_regressor(model: PoseRegressor, path, *, half: bool = True, **info) -> None:
    """torch.save ``regressor_dict(model, half=half, **info)`` to ``path``."""
    torch.save(regressor_dict(model, half=half, **info), path)


def regressor_dict(model: PoseRegressor, *, half: bool = True, **info) -> dict:
    """{"config", "state_dict" (fp16 when ``half``), "error_sigma", **info}: loads with
    ``regressor_from_dict`` and ``torch.load(..., weights_only=True)``."""
    sd = {k: v.half() if half and v.is_floating_point() else v
          for k, v in model.state_dict().items()}
    kind = {"kind": "grr", "translation": model.translation, "rounds": model.rounds} \
        if model.kind == "grr" else {}
    return {"config": asdict(model.config), "state_dict": sd,
            "error_sigma": list(model.error_sigma), **kind, **info}


def regressor_from_dict(content: dict) -> PoseRegressor:
    """A PoseRegressor, or a ``grr.GeometryRegressor`` where ``content["kind"]`` says so (fp32,
    eval mode), from ``regressor_dict``'s dict."""
    config = RegressorConfig(**content["config"])
    if content.get("kind", "marepo") == "grr":
        model = GeometryRegressor(config, translation=content["translation"],
                                  rounds=content["rounds"])
    else:
        model = PoseRegressor(config)
    model.load_state_dict({k: v.float() for k, v in content["state_dict"].items()})
    model.error_sigma = tuple(content.get("error_sigma", DEFAULT_ERROR_SIGMA))
    return model.eval()


SHIPPED = {"marepo": "regressor_small.pt", "grr": "regressor_grr_small.pt"}


def shipped_regressor_path(kind: str = "marepo") -> Path:
    """Where the shipped ``small`` regressor of a kind (``marepo`` or ``grr``) lies (see
    weights/REGRESSOR_CARD.md and GRR_CARD.md)."""
    return Path(str(resources.files("marepo_ros.models") / "weights" / SHIPPED[kind]))


def load_regressor(path: str | Path | None = None, device: str | torch.device = "cpu", *,
                   kind: str = "marepo") -> PoseRegressor:
    """The regressor stored at ``path`` by ``save_regressor`` (default: the shipped one of
    ``kind``)."""
    content = torch.load(path or shipped_regressor_path(kind), map_location="cpu",
                         weights_only=True)
    return regressor_from_dict(content).to(device)
