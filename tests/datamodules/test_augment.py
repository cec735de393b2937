"""Batch augmentation against torchvision.transforms.v2.functional, image by image, and its randomness."""

from __future__ import annotations

import pytest
import torch
import torchvision.transforms.v2.functional as TF

from datamodules.augment import JITTER_OPS, Augmentation

TV_JITTER = {"brightness": TF.adjust_brightness, "contrast": TF.adjust_contrast,
             "saturation": TF.adjust_saturation, "hue": TF.adjust_hue}


@pytest.fixture
def images():
    torch.manual_seed(0)
    x = torch.rand(8, 3, 32, 32)
    x[0] = 0.5  # a gray image: hue and saturation undefined
    x[1, :, :8] = 1.0  # saturated pixels, clamping matters
    return x


def test_crop_matches_torchvision(images):
    aug = Augmentation(crop_padding=4)
    top, left = torch.tensor([0, 8, 3, 4, 0, 8, 1, 7]), torch.tensor([0, 8, 5, 4, 8, 0, 2, 6])
    out = aug.apply(images, {"top": top, "left": left})
    for i in range(len(images)):
        ref = TF.crop(TF.pad(images[i], [4], fill=0), int(top[i]), int(left[i]), 32, 32)
        torch.testing.assert_close(out[i], ref, rtol=0, atol=1e-5)


def test_flip_matches_torchvision(images):
    flip = torch.tensor([True, False] * 4)
    out = Augmentation(hflip=0.5).apply(images, {"flip": flip})
    for i in range(len(images)):
        ref = TF.horizontal_flip(images[i]) if flip[i] else images[i]
        torch.testing.assert_close(out[i], ref, rtol=0, atol=1e-5)


@pytest.mark.parametrize("op", JITTER_OPS)
@pytest.mark.parametrize("channels", [3, 1])
def test_each_jitter_op_matches_torchvision(images, op, channels):
    x = images[:, :channels]
    n = len(x)
    factors = torch.linspace(-0.5, 0.5, n) if op == "hue" else torch.linspace(0.0, 2.0, n)
    k = JITTER_OPS.index(op)
    order = torch.tensor([k] + [j for j in range(4) if j != k]).repeat(n, 1)
    # only this op is in params, so only it runs
    aug = Augmentation(**{op: 0.5 if op == "hue" else 1.0})
    out = aug.apply(x, {op: factors, "order": order})
    tol = 1e-3 if op == "hue" else 1e-5
    for i in range(n):
        ref = TV_JITTER[op](x[i], float(factors[i]))
        torch.testing.assert_close(out[i], ref, rtol=0, atol=tol)


def test_full_pipeline_matches_torchvision_per_sample(images):
    aug = Augmentation(crop_padding=4, hflip=0.5, brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1)
    params = aug.sample(len(images), generator=torch.Generator().manual_seed(3))
    out = aug.apply(images, params)
    for i in range(len(images)):
        ref = TF.crop(TF.pad(images[i], [4], fill=0), int(params["top"][i]), int(params["left"][i]), 32, 32)
        if params["flip"][i]:
            ref = TF.horizontal_flip(ref)
        for op_index in params["order"][i].tolist():  # ColorJitter's random order, per sample
            op = JITTER_OPS[op_index]
            ref = TV_JITTER[op](ref, float(params[op][i]))
        torch.testing.assert_close(out[i], ref, rtol=0, atol=1e-3)


def test_parameters_are_per_sample_independent_and_in_range():
    aug = Augmentation(crop_padding=4, hflip=0.5, brightness=0.3, contrast=0.6, saturation=1.5, hue=0.1)
    n = 20_000
    p = aug.sample(n, generator=torch.Generator().manual_seed(0))
    assert p["top"].min() == 0 and p["top"].max() == 8 and p["left"].min() == 0 and p["left"].max() == 8
    assert torch.bincount(p["top"], minlength=9).min() > n / 9 * 0.9  # every offset about equally likely
    assert abs(p["flip"].float().mean() - 0.5) < 0.02
    for name, (low, high) in {"brightness": (0.7, 1.3), "contrast": (0.4, 1.6), "saturation": (0.0, 2.5),
                              "hue": (-0.1, 0.1)}.items():
        v = p[name]
        assert low <= v.min() and v.max() <= high, name
        assert v.min() < low + 0.01 * (high - low) and v.max() > high - 0.01 * (high - low), name
        assert abs(v.mean() - (low + high) / 2) < 0.02 * (high - low), name
    # independent: no correlation between parameters, nor between neighbouring samples
    stacked = torch.stack([p["brightness"], p["contrast"], p["saturation"], p["hue"], p["top"].float(),
                           p["left"].float(), p["flip"].float()])
    corr = torch.corrcoef(stacked)
    assert (corr - torch.eye(7)).abs().max() < 0.04
    lagged = torch.corrcoef(torch.stack([p["brightness"][:-1], p["brightness"][1:]]))[0, 1]
    assert abs(lagged) < 0.04
    # every one of the 24 jitter orders occurs
    assert len({tuple(o) for o in p["order"].tolist()}) == 24


@pytest.mark.parametrize("p", [0.1, 0.8, 1.0])
def test_the_flip_happens_with_its_probability(p):
    """p, not 1 - p: at 0.5 (every other test's value) the two are alike."""
    flips = Augmentation(hflip=p).sample(20_000, generator=torch.Generator().manual_seed(1))["flip"].float().mean()
    assert abs(flips - p) < 0.015


def test_invalid_settings_are_refused():
    with pytest.raises(ValueError, match="hue=0.7 must be in"):
        Augmentation(hue=0.7)
    with pytest.raises(ValueError, match="hflip=2.0 is a probability"):
        Augmentation(hflip=2.0)


def test_off_means_identity(images):
    assert Augmentation()(images) is images


def test_hue_over_several_chunks_matches_torchvision():
    """A batch over two HUE_CHUNKs and a part (each chunk its own shifts and workspace slice)."""
    from datamodules.augment import HUE_CHUNK, adjust_hue_

    torch.manual_seed(1)
    n = 2 * HUE_CHUNK + 3
    x = torch.rand(n, 3, 16, 16)
    shifts = torch.linspace(-0.5, 0.5, n)
    out = adjust_hue_(x.clone(), shifts)
    for i in range(n):
        torch.testing.assert_close(out[i], TF.adjust_hue(x[i], float(shifts[i])), rtol=0, atol=1e-3)
