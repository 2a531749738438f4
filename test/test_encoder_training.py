"""The encoder's training objective: exact correspondences from renders, a loss that learns."""
import numpy as np
import torch

from marepo_ros.models.networks import Encoder
from marepo_ros.training.encoder import HEIGHT, WIDTH, PairSource, contrastive_loss, sample_features


def test_correspondences_are_consistent_views_of_one_point():
    src = PairSource(seed=3, pool=1)
    ga, gb, uv_a, uv_b = src.pair()
    assert ga.shape == gb.shape == (HEIGHT, WIDTH)
    assert len(uv_a) == len(uv_b) >= 16
    # at most one point per 16x16 block of view a: no two positives share a feature cell
    cells = {(int(u) // 16, int(v) // 16) for u, v in uv_a}
    assert len(cells) == len(uv_a)
    assert np.all((uv_b >= 0) & (uv_b <= [WIDTH - 1, HEIGHT - 1]))


def test_sample_features_reads_cell_centres_exactly():
    f = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(1, 2, 3, 4)
    # the centre of cell (row 1, col 2) is pixel (2*8 + 3.5, 1*8 + 3.5)
    uv = torch.tensor([[19.5, 11.5]])
    out = sample_features(f, uv, torch.zeros(1, dtype=torch.long), (24, 32))
    torch.testing.assert_close(out[0], f[0, :, 1, 2])


def test_contrastive_loss_decreases_on_a_fixed_batch():
    torch.manual_seed(0)
    batch = PairSource(seed=5, pool=2).batch(2)
    enc = Encoder()
    opt = torch.optim.Adam(enc.parameters(), lr=3e-4)
    first, _ = contrastive_loss(enc, batch)
    for _ in range(6):
        loss, _ = contrastive_loss(enc, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    last, _ = contrastive_loss(enc, batch)
    assert torch.isfinite(first) and last.item() < first.item() - 0.05
