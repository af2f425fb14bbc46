import numpy as np
import torch

from neuroadda.models.losses import affinity_loss, masked_bce


def _bce(p, t):
    return -(t * np.log(p) + (1 - t) * np.log(1 - p))


def test_balanced_bce_matches_hand_computation():
    logits = torch.tensor([0.5, -1.0, 2.0, 0.0, 1.0, -0.3]).reshape(1, 1, 1, 1, 6)
    target = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 1.0]).reshape(1, 1, 1, 1, 6)
    mask = torch.tensor([1.0, 1.0, 1.0, 0.0, 1.0, 1.0]).reshape(1, 1, 1, 1, 6)
    p = 1 / (1 + np.exp(-logits.numpy().ravel()))
    t, m = target.numpy().ravel(), mask.numpy().ravel()
    pos = [_bce(p[i], 1) for i in range(6) if m[i] and t[i] == 1]
    neg = [_bce(p[i], 0) for i in range(6) if m[i] and t[i] == 0]
    expect = 0.5 * np.mean(pos) + 0.5 * np.mean(neg)
    assert abs(masked_bce(logits, target, mask).item() - expect) < 1e-6
    plain = np.mean(pos + neg)
    assert abs(masked_bce(logits, target, mask, balanced=False).item() - plain) < 1e-6


def test_masked_out_channels_are_skipped_and_gradients_flow():
    logits = torch.zeros(1, 3, 2, 2, 2, requires_grad=True)
    target = torch.ones(1, 3, 2, 2, 2)
    mask = torch.zeros(1, 3, 2, 2, 2)
    mask[:, 1] = 1
    loss = affinity_loss(logits, target, mask, dice_weight=0.5)
    loss.backward()
    assert abs(masked_bce(logits, target, mask).item() - np.log(2)) < 1e-6
    assert logits.grad[:, 0].abs().sum() == 0 and logits.grad[:, 1].abs().sum() > 0


def test_balanced_loss_is_not_dominated_by_positives():
    # 99 positives, 1 negative: predicting "all connected" costs little under plain BCE, much under balanced
    target = torch.ones(1, 1, 1, 1, 100)
    target[..., 0] = 0
    mask = torch.ones_like(target)
    logits = torch.full_like(target, 4.0)
    assert masked_bce(logits, target, mask, balanced=False) < 0.1
    assert masked_bce(logits, target, mask, balanced=True) > 1.0
