"""How many threads torch uses on the CPU for one piece of work."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def cpu_threads(n: int | None) -> Iterator[None]:
    """torch's CPU thread count set to ``n`` inside the block and restored after (None: left
    alone). Small per-frame workloads (XFeat's thin layers, a 1024 x 7000 similarity product,
    PnP's covariance) gain little from a second core and lose much when OpenMP threads wait for
    a core that other processes hold: on 2 busy cores, ``points`` took 115 ms per frame with 2
    threads and 64 ms with 1."""
    if n is None or n == torch.get_num_threads():
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
