"""Mapping: train a scene-specific head from posed images, following ACE.

1. Feature buffer: each mapping image is augmented (random rescale, in-plane rotation,
   brightness/contrast), passed through the frozen encoder, and a random subset of its valid
   output cells is stored with the pixel they came from in the *original* image, so the
   reprojection target is exact whatever the augmentation.
2. Head training: ACE's reprojection loss, L1 pixel error soft-clamped by tau * tanh(e / tau)
   with tau shrinking from 50 to 1 px on a circular schedule; predictions behind the camera
   (z < 0.1 m), beyond 1000 m or off by more than 1000 px are instead pulled towards a point
   10 m along the pixel's ray. An optional 3D loss (metres) helps the start and fades out: its
   targets come from depth where the images have it, else from the keyframe feature map's
   points (triangulated): a sample within ``point_radius_px`` of a keyframe keypoint gets the
   point on its own ray at that keypoint's depth. Without it the reprojection loss alone does
   not converge on forward motion (the depth along each ray is barely constrained).
   AdamW with a one-cycle learning rate; mixed precision on CUDA.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, replace
from typing import Callable

import cv2
import numpy as np
import torch
from scipy.spatial import cKDTree
from torch import nn

from ..geometry import backproject, invert_pose, transform_points
from ..io.feature_map import FeatureMap
from ..io.mapfile import SceneMap
from ..models.identity import state_dict_hash
from ..models.networks import Head
from ..models.preprocess import GREY_MEAN, GREY_STD, cell_centres, target_size, to_grey
from ..models.xfeat import XFeatExtractor
from .feature_map import FeatureMapConfig, build_feature_map
from .refine import corrected_poses
from .frames import MappingCancelled, PosedImage, Progress

@dataclass(frozen=True)
class MappingConfig:
    """Mapping hyper-parameters. ``PRESETS`` holds the named ones."""
    short_side: int = 480            # image short side (pixels) for encoder and localization
    samples_per_image: int = 1024    # buffer features per augmented image
    buffer_size: int = 8_000_000     # features in the buffer (ACE: 8 M)
    max_passes: int = 50             # passes over the mapping images while filling the buffer
    batch_size: int = 5120
    epochs: float = 16.0             # passes over the buffer
    min_iterations: int = 0          # ... but at least this many steps (small scenes)
    lr_max: float = 5e-3
    scale_range: tuple[float, float] = (2 / 3, 1.5)
    rotation_deg: float = 15.0
    photometric: float = 0.1         # brightness / contrast jitter (fraction)
    clamp_max_px: float = 50.0
    clamp_min_px: float = 1.0
    depth_weight: float = 0.0        # weight of the 3D loss (per metre); 0 = off
    depth_fade: float = 0.5          # fraction of training after which the 3D loss is gone
    point_radius_px: float = 12.0    # images without depth: 3D targets within this of a keypoint
    head_blocks: int = 1
    head_channels: int = 512         # hidden width of the head (ACE: 512)
    seed: int = 0
    head: bool = True                # train a scene-coordinate head
    features: FeatureMapConfig | None = FeatureMapConfig()   # the keyframe feature map


PRESETS: dict[str, MappingConfig] = {
    # ACE's schedule, for a GPU (about 5 minutes there).
    "ace": MappingConfig(),
    # A CPU schedule (measured on redkitchen, 2 cores): half-size images, one augmented pass
    # over the mapping images, a 256-wide head trained with small batches (at least 3000 steps,
    # which small scenes need: 120 frames get ~840 steps from 12 epochs), and a 3D loss from
    # depth or triangulated keyframe points (see docs/results.md).
    "fast": MappingConfig(short_side=240, samples_per_image=600, buffer_size=600_000,
                          max_passes=1, batch_size=1024, epochs=12.0, min_iterations=3000,
                          lr_max=3e-3, head_channels=256, depth_weight=20.0),
}


@dataclass
class FeatureBuffer:
    """features_NC (fp16), pixel uv_N2 in the original image, frame index_N, and target
    coordinates xyz_N3 from depth (NaN where unknown)."""
    features_NC: torch.Tensor
    uv_N2: torch.Tensor
    index_N: torch.Tensor
    xyz_N3: torch.Tensor

    def __len__(self) -> int:
        return len(self.index_N)


def _augment(grey: np.ndarray, short_side: int, cfg: MappingConfig, rng: np.random.Generator):
    """(augmented normalised image_11HW, valid mask HxW, A 2x3 mapping augmented pixels back
    to original pixels)."""
    h, w = grey.shape
    s = rng.uniform(*cfg.scale_range)
    W, H = target_size(w, h, int(round(short_side * s)))
    sx, sy = W / w, H / h
    img = cv2.resize(grey, (W, H), interpolation=cv2.INTER_AREA if sx < 1 else cv2.INTER_LINEAR)
    angle = rng.uniform(-cfg.rotation_deg, cfg.rotation_deg)
    R = cv2.getRotationMatrix2D(((W - 1) / 2, (H - 1) / 2), angle, 1.0)  # resized -> augmented
    img = cv2.warpAffine(img, R, (W, H), flags=cv2.INTER_LINEAR, borderValue=0)
    mask = cv2.warpAffine(np.ones((H, W), np.uint8), R, (W, H), flags=cv2.INTER_NEAREST)
    x = img.astype(np.float32) / 255.0
    x = (x - 0.5) * (1 + rng.uniform(-cfg.photometric, cfg.photometric)) + 0.5 \
        + rng.uniform(-cfg.photometric, cfg.photometric)
    x = torch.from_numpy((x - GREY_MEAN) / GREY_STD)[None, None]
    # augmented pixel -> resized pixel (inverse rotation) -> original pixel (inverse scale)
    Rinv = cv2.invertAffineTransform(R)
    S = np.diag([1 / sx, 1 / sy])
    A = np.hstack([S @ Rinv[:, :2], (S @ Rinv[:, 2] + 0.5 / np.array([sx, sy]) - 0.5)[:, None]])
    return x, mask, A


KeyframePoints = dict[int, tuple[np.ndarray, np.ndarray]]   # image -> (uv_N2 pixels, xyz_N3 metres)


def keyframe_points(images: list[PosedImage], feature_map: FeatureMap) -> KeyframePoints:
    """The feature map's keypoints and 3D points by index into ``images``: keyframes are found
    among the images by their pose (the map was built from these images)."""
    poses = np.stack([np.asarray(im.map_from_cam, np.float64) for im in images]).reshape(len(images), 16)
    fm, out = feature_map, {}
    for k in range(fm.n_keyframes):
        gap = np.abs(poses - fm.map_from_cam_K44[k].reshape(16)).max(1)
        i = int(np.argmin(gap))
        if gap[i] < 1e-6:
            rows = slice(fm.offsets_K1[k], fm.offsets_K1[k + 1])
            out[i] = (fm.keypoints_P2[rows].astype(np.float64), fm.points_P3[rows].astype(np.float64))
    return out


def fill_buffer(images: list[PosedImage], encoder: nn.Module, cfg: MappingConfig,
                device: torch.device, progress: Progress | None = None,
                cancel: Callable[[], bool] | None = None,
                points: KeyframePoints | None = None) -> FeatureBuffer:
    """Encode augmented mapping images into a FeatureBuffer (see module docstring); ``points``
    give 3D targets in images without depth."""
    rng = np.random.default_rng(cfg.seed)
    feats, uvs, idxs, xyzs = [], [], [], []
    n, total = 0, min(cfg.max_passes * len(images), math.ceil(cfg.buffer_size / cfg.samples_per_image))
    done = 0
    while n < cfg.buffer_size and done < total:
        for i in rng.permutation(len(images)):
            if n >= cfg.buffer_size or done >= total:
                break
            if cancel is not None and cancel():
                raise MappingCancelled("mapping cancelled while filling the feature buffer")
            item = images[i]
            grey = to_grey(item.load_image())
            x, mask, A = _augment(grey, cfg.short_side, cfg, rng)
            with torch.no_grad(), torch.autocast(device.type, enabled=device.type == "cuda"):
                f = encoder(x.to(device))[0].float()  # C x h x w
            hc, wc = f.shape[1:]
            uv_aug = cell_centres(hc, wc).numpy()
            ui = np.clip(np.round(uv_aug).astype(int), 0, [mask.shape[1] - 1, mask.shape[0] - 1])
            valid = np.flatnonzero(mask[ui[:, 1], ui[:, 0]] > 0)
            pick = rng.permutation(valid)[:cfg.samples_per_image]
            uv = uv_aug[pick] @ A[:, :2].T + A[:, 2]
            feats.append(f.flatten(1).T[torch.from_numpy(pick).to(device)].half().cpu())
            uvs.append(torch.from_numpy(uv.astype(np.float32)))
            idxs.append(torch.full((len(pick),), int(i), dtype=torch.int32))
            xyzs.append(torch.from_numpy(_point_targets(item, grey.shape, uv, (points or {}).get(int(i)),
                                                        cfg.point_radius_px)))
            n += len(pick)
            done += 1
            if progress:
                progress("buffer", done, total, {"features": n})
    return FeatureBuffer(torch.cat(feats), torch.cat(uvs), torch.cat(idxs), torch.cat(xyzs))


def _point_targets(item: PosedImage, shape: tuple[int, int], uv: np.ndarray,
                   keypoints: tuple[np.ndarray, np.ndarray] | None, radius_px: float) -> np.ndarray:
    """Map-frame points (N, 3) float32 on the rays of original pixels uv: at the item's depth,
    or (no depth) at the camera depth of the nearest keypoint within ``radius_px`` of
    ``keypoints`` (uv_K2, xyz_K3); NaN elsewhere."""
    out = np.full((len(uv), 3), np.nan, np.float32)
    depth = item.load_depth()
    if depth is not None:
        h, w = shape
        ui = np.clip(np.round(uv).astype(int), 0, [w - 1, h - 1])
        z = depth[ui[:, 1], ui[:, 0]].astype(np.float64)
    elif keypoints is not None and len(keypoints[0]):
        kp_uv, kp_xyz = keypoints
        kp_z = transform_points(invert_pose(item.map_from_cam), kp_xyz)[:, 2]
        dist, nearest = cKDTree(kp_uv).query(uv, distance_upper_bound=radius_px)
        found = np.isfinite(dist)
        z = np.zeros(len(uv))
        z[found] = kp_z[nearest[found]]
    else:
        return out
    ok = (z > 0.05) & np.isfinite(z)
    pts = transform_points(item.map_from_cam, backproject(item.K, uv[ok], z[ok]))
    out[ok] = pts
    return out


def _reprojection_loss(pred_N3, uv_N2, cam_from_map_N34, K_N33, tau: float):
    """ACE's loss per sample (N,) and the fraction of valid predictions."""
    cam = torch.einsum("nij,nj->ni", cam_from_map_N34[:, :, :3], pred_N3) + cam_from_map_N34[:, :, 3]
    z = cam[:, 2]
    uvw = torch.einsum("nij,nj->ni", K_N33, cam)
    uv_pred = uvw[:, :2] / z.clamp(min=0.1)[:, None]
    err = (uv_pred - uv_N2).abs().sum(1)
    valid = (z > 0.1) & (err < 1000) & (pred_N3.abs().amax(1) < 1000)
    loss_valid = tau * torch.tanh(err / tau)
    ray = torch.cat([uv_N2, torch.ones_like(uv_N2[:, :1])], 1)
    target_cam = 10.0 * torch.linalg.solve(K_N33, ray[:, :, None])[:, :, 0]
    loss_invalid = (cam - target_cam).abs().sum(1)
    return torch.where(valid, loss_valid, loss_invalid), valid.float().mean()


def train_head(buffer: FeatureBuffer, images: list[PosedImage], cfg: MappingConfig,
               device: torch.device, progress: Progress | None = None,
               cancel: Callable[[], bool] | None = None) -> tuple[Head, dict]:
    """Train a Head on the buffer; returns (head, statistics)."""
    torch.manual_seed(cfg.seed)
    centres = np.stack([p.map_from_cam[:3, 3] for p in images])
    head = Head(mean=torch.from_numpy(centres.mean(0)).float(), num_head_blocks=cfg.head_blocks,
                in_channels=buffer.features_NC.shape[1], channels=cfg.head_channels).to(device).train()
    cam_from_map = torch.from_numpy(np.stack([invert_pose(p.map_from_cam)[:3] for p in images])
                                    ).float().to(device)
    Ks = torch.from_numpy(np.stack([p.K for p in images])).float().to(device)
    n = len(buffer)
    iterations = max(1, cfg.min_iterations, int(cfg.epochs * n / cfg.batch_size))
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr_max / 10)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr_max, total_steps=iterations,
                                                cycle_momentum=False)
    use_amp = device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    feats = buffer.features_NC.to(device)
    uv, idx, xyz = buffer.uv_N2.to(device), buffer.index_N.long().to(device), buffer.xyz_N3.to(device)
    has_depth = bool(torch.isfinite(xyz[:, 0]).any()) and cfg.depth_weight > 0
    perm = torch.randperm(n, device=device)
    pos, loss_avg, valid_avg = 0, 0.0, 0.0
    for it in range(iterations):
        if cancel is not None and it % 50 == 0 and cancel():
            raise MappingCancelled("mapping cancelled while training the head")
        if pos + cfg.batch_size > n:
            perm, pos = torch.randperm(n, device=device), 0
        b = perm[pos:pos + cfg.batch_size]
        pos += cfg.batch_size
        progress_frac = it / iterations
        w = 1 - math.sqrt(max(0.0, 1 - progress_frac ** 2))  # ACE's circular schedule
        tau = (1 - w) * cfg.clamp_max_px + cfg.clamp_min_px
        with torch.autocast(device.type, enabled=use_amp):
            pred = head.forward_flat(feats[b].float())
        pred = pred.float()
        per_sample, valid_frac = _reprojection_loss(pred, uv[b], cam_from_map[idx[b]], Ks[idx[b]], tau)
        loss = per_sample.mean()
        fade = max(0.0, 1 - progress_frac / cfg.depth_fade) if cfg.depth_fade > 0 else 0.0
        if has_depth and fade > 0:
            target = xyz[b]
            ok = torch.isfinite(target[:, 0])
            if ok.any():
                loss = loss + cfg.depth_weight * fade * (pred[ok] - target[ok]).norm(dim=1).mean()
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        sched.step()
        loss_avg = 0.98 * loss_avg + 0.02 * per_sample.mean().item() if it else per_sample.mean().item()
        valid_avg = 0.98 * valid_avg + 0.02 * valid_frac.item() if it else valid_frac.item()
        if progress and (it % 10 == 0 or it == iterations - 1):
            progress("head", it + 1, iterations, {"loss": loss_avg, "valid": valid_avg, "tau": tau})
    head.eval()
    return head, {"iterations": iterations, "final_loss_px": round(loss_avg, 3),
                  "final_valid_fraction": round(valid_avg, 4)}


def build_map(images: list[PosedImage], encoder: nn.Module | None, cfg: MappingConfig, *,
              device: str | torch.device = "cpu", progress: Progress | None = None,
              cancel: Callable[[], bool] | None = None,
              feature_map: tuple[FeatureMap, dict] | None = None) -> SceneMap:
    """Map a scene from posed images: the keyframe feature map (``cfg.features``; or the
    given one with its statistics, built from these images), then the feature buffer and head
    training (``cfg.head``), with the feature map's points as 3D targets where images have no
    depth. See the module docs."""
    if len(images) < 2:
        raise ValueError(f"mapping needs at least 2 posed images, got {len(images)}")
    if not cfg.head and cfg.features is None:
        raise ValueError("nothing to build: the config asks for neither a head nor a feature map")
    device = torch.device(device)
    t0 = time.time()
    stats = {"frames": len(images), "device": str(device), "config": asdict(cfg)}
    if feature_map is not None:
        feature_map, stats["feature_map"] = feature_map
    elif cfg.features is not None:
        extractor = XFeatExtractor(top_k=cfg.features.top_k, device=device)
        try:
            feature_map, stats["feature_map"] = build_feature_map(images, extractor, cfg.features,
                                                                   progress=progress, cancel=cancel)
        except ValueError as exc:   # e.g. nothing to triangulate: the head may still work
            if not cfg.head:
                raise
            stats["feature_map_error"] = str(exc)
    head, encoder_id = None, ""
    refined = (stats.get("feature_map") or {}).get("refinement") or {}
    if cfg.head and refined.get("applied"):       # the head learns the refined trajectory too
        poses = corrected_poses(np.stack([im.map_from_cam for im in images]),
                                stats["feature_map"]["keyframe_indices"], feature_map.map_from_cam_K44)
        images = [replace(im, map_from_cam=T) for im, T in zip(images, poses)]
    if cfg.head:
        encoder = encoder.to(device).eval()
        t1 = time.time()
        points = keyframe_points(images, feature_map) if feature_map is not None else None
        buffer = fill_buffer(images, encoder, cfg, device, progress, cancel, points)
        t2 = time.time()
        head, head_stats = train_head(buffer, images, cfg, device, progress, cancel)
        stats.update(head_stats, buffer_features=len(buffer),
                     buffer_3d_targets=int(torch.isfinite(buffer.xyz_N3[:, 0]).sum()),
                     buffer_seconds=round(t2 - t1, 1),
                     training_seconds=round(time.time() - t2, 1))
        head, encoder_id = head.cpu(), state_dict_hash(encoder)
    stats["total_seconds"] = round(time.time() - t0, 1)
    return SceneMap(head=head, encoder_id=encoder_id, short_side=cfg.short_side, stats=stats,
                    feature_map=feature_map, encoder=encoder.name if head is not None else "")


def preset(name: str, **overrides) -> MappingConfig:
    """A named MappingConfig with optional field overrides. An explicit ``epochs`` replaces
    the preset's whole schedule, its ``min_iterations`` floor included."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset '{name}' (choose from {', '.join(PRESETS)})")
    if "epochs" in overrides:
        overrides.setdefault("min_iterations", 0)
    return replace(PRESETS[name], **overrides)
