"""The identity of a network's weights: a short hash that maps and feature maps record, so that a
map is only used with the encoder (or extractor) it was built with."""
from __future__ import annotations

import hashlib

from torch import nn


def state_dict_hash(module: nn.Module) -> str:
    """Short sha256 of a module's parameters and buffers (names, shapes and values)."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(tensor.shape)).encode())
        h.update(tensor.detach().cpu().float().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]
