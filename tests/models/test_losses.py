import numpy as np
import torch

from neuroadda.models.losses import affinity_loss, masked_bce, masked_dice


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


def _loop_balanced_bce(logits, target, mask):
    """Channel-by-channel reference written with numpy (the definition, independent of the vectorised code)."""
    lg, t, m = (a.detach().numpy().astype(np.float64) for a in (logits, target, mask))
    p = 1 / (1 + np.exp(-lg))
    terms = []
    for c in range(lg.shape[1]):
        mc, tc, pc = m[:, c], t[:, c], p[:, c]
        if mc.sum() == 0:
            continue
        parts = [(_bce(pc, tc) * w).sum() / w.sum() for w in (mc * tc, mc * (1 - tc)) if w.sum() > 0]
        terms.append(np.mean(parts))
    return np.mean(terms)


def test_vectorised_balanced_bce_equals_the_channel_loop():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 3, 5, 5, generator=g)
    target = (torch.rand(2, 4, 3, 5, 5, generator=g) > 0.3).float()
    mask = (torch.rand(2, 4, 3, 5, 5, generator=g) > 0.2).float()
    mask[:, 2] = 0  # a channel with nothing to learn
    target[:, 3] = 1  # a channel with positives only
    assert abs(masked_bce(logits, target, mask).item() - _loop_balanced_bce(logits, target, mask)) < 1e-5


def test_affinity_dice_hand_computed():
    logits = torch.tensor([0.0, 2.0, -1.0, 1.0]).reshape(1, 1, 1, 1, 4)
    target = torch.tensor([1.0, 1.0, 0.0, 0.0]).reshape(1, 1, 1, 1, 4)
    mask = torch.tensor([1.0, 1.0, 1.0, 0.0]).reshape(1, 1, 1, 1, 4)
    p = 1 / (1 + np.exp(-np.array([0.0, 2.0, -1.0])))
    t = np.array([1.0, 1.0, 0.0])
    expect = 1 - 2 * (p * t).sum() / ((p * p).sum() + (t * t).sum())
    assert abs(masked_dice(logits, target, mask).item() - expect) < 1e-6
    only_dice = affinity_loss(logits, target, mask, bce="none", dice_weight=1.0, dice_target="affinity")
    assert abs(only_dice.item() - expect) < 1e-6


def test_auxiliary_channels_weighted_against_nearest_neighbours():
    logits = torch.zeros(1, 5, 2, 2, 2)
    target = torch.ones(1, 5, 2, 2, 2)
    mask = torch.ones(1, 5, 2, 2, 2)
    target[:, 3:] = 0  # aux channels: all boundary -> same BCE log 2 at logits 0
    main = masked_bce(logits[:, :3], target[:, :3], mask[:, :3])
    both = affinity_loss(logits, target, mask, aux_weight=0.5)
    assert abs(both.item() - main.item()) < 1e-6  # log 2 either way
    logits[:, 3:] = 5.0  # confident and wrong on the aux channels only
    aux = masked_bce(logits[:, 3:], target[:, 3:], mask[:, 3:])
    both = affinity_loss(logits, target, mask, aux_weight=0.5)
    assert abs(both.item() - (main.item() + 0.5 * aux.item()) / 1.5) < 1e-5
