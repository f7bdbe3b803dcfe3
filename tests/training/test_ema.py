import torch

from deepfake_lab.training.ema import ema_beta, update_ema


def test_half_life_and_rampup():
    # After half_life images the old weights keep half their weight.
    beta = ema_beta(batch=10, cur_nimg=10**9, half_life_kimg=1.0, rampup=None)
    assert abs(beta**100 - 0.5) < 1e-9
    assert ema_beta(10, cur_nimg=100, half_life_kimg=1.0, rampup=0.05) == 0.5 ** (10 / 5)
    assert ema_beta(10, 100, 0.0, None) == 0.0


def test_update_ema_lerps_params_and_copies_buffers():
    ema, model = torch.nn.BatchNorm1d(3), torch.nn.BatchNorm1d(3)
    with torch.no_grad():
        model.weight.fill_(2.0)
        model.running_mean.fill_(5.0)
        ema.weight.fill_(0.0)
    update_ema(ema, model, beta=0.75)
    assert torch.allclose(ema.weight, torch.full((3,), 0.5))
    assert torch.equal(ema.running_mean, model.running_mean)
