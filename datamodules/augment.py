"""Training augmentation on whole batches, on the batch's device, with per-sample random parameters.

Random crop with zero padding, horizontal flip, and color jitter (brightness,
contrast, saturation, hue, applied in a random order per sample, as
torchvision's ``ColorJitter`` does). Each operation computes what
``torchvision.transforms.v2.functional`` computes for one image (the tests
check it), but for a whole ``N x C x H x W`` float batch at once, so on a GPU the
augmentation runs on the GPU and on a CPU it costs a few vectorised ops per batch
instead of Python work per image.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

_GRAY = (0.2989, 0.587, 0.114)  # ITU-R 601-2 luma, as torchvision and PIL
JITTER_OPS = ("brightness", "contrast", "saturation", "hue")


def _per_sample(factor: torch.Tensor) -> torch.Tensor:
    return factor.view(-1, 1, 1, 1)


def grayscale(x: torch.Tensor) -> torch.Tensor:
    """N x 3 x H x W -> N x 1 x H x W luma."""
    r, g, b = x.unbind(dim=1)
    return (_GRAY[0] * r + _GRAY[1] * g + _GRAY[2] * b).unsqueeze(1)


def adjust_brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return (x * _per_sample(factor)).clamp(0, 1)


def _blend(x: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    f = _per_sample(factor)
    return (f * x + (1 - f) * other).clamp(0, 1)


def adjust_contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    gray = grayscale(x) if x.shape[1] == 3 else x
    return _blend(x, gray.mean(dim=(1, 2, 3), keepdim=True), factor)


def adjust_saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    if x.shape[1] == 1:  # no color to saturate (torchvision and PIL return the image)
        return x
    return _blend(x, grayscale(x), factor)


def rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(dim=1)
    maxc = torch.maximum(torch.maximum(r, g), b)  # elementwise: much faster than a reduction over dim 1
    minc = torch.minimum(torch.minimum(r, g), b)
    delta = maxc - minc
    gray = delta == 0  # hue and saturation are 0 where all channels are equal
    s = delta / torch.where(gray, torch.ones_like(maxc), maxc)
    d = torch.where(gray, torch.ones_like(delta), delta)
    rc, gc, bc = (maxc - r) / d, (maxc - g) / d, (maxc - b) / d
    h = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    h = torch.where(gray, torch.zeros_like(h), h)
    h = (h / 6.0 + 1.0).fmod(1.0)
    return torch.stack((h, s, maxc), dim=1)


def hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    # channel c = v - v*s*clamp(min(k, 4 - k), 0, 1), k = (n + 6h) mod 6 with n = 5, 3, 1 for r, g, b:
    # the sector table of the textbook conversion in closed form, with no integer gather
    h, s, v = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    n = torch.tensor([5.0, 3.0, 1.0], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    k = (n + h * 6.0).remainder(6.0)
    return (v - v * s * torch.minimum(k, 4.0 - k).clamp(0, 1)).clamp(0, 1)


def adjust_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    if x.shape[1] == 1:  # a gray image has no hue
        return x
    hsv = rgb_to_hsv(x)
    h = (hsv[:, 0] + shift.view(-1, 1, 1)).remainder(1.0)
    return hsv_to_rgb(torch.stack((h, hsv[:, 1], hsv[:, 2]), dim=1))


_JITTER = {"brightness": adjust_brightness, "contrast": adjust_contrast, "saturation": adjust_saturation, "hue": adjust_hue}


def crop(x: torch.Tensor, top: torch.Tensor, left: torch.Tensor, size: int, padding: int) -> torch.Tensor:
    """Zero-pad by ``padding`` then take a ``size`` x ``size`` window at (top, left) of each sample."""
    if padding:
        x = F.pad(x, (padding,) * 4)
    n, c, h, w = x.shape
    steps = torch.arange(size, device=x.device)
    rows = (top.view(n, 1) + steps).view(n, 1, size, 1).expand(n, c, size, w)
    x = x.gather(2, rows)  # N x C x size x W
    cols = (left.view(n, 1) + steps).view(n, 1, 1, size).expand(n, c, size, size)
    return x.gather(3, cols)  # N x C x size x size


def hflip(x: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)


@dataclass
class Augmentation:
    """What to apply to training batches; zero or ``False`` turns a part off.

    ``crop_padding`` > 0 turns on the random crop (back to the input size after
    zero padding), ``hflip`` is the flip probability, and the four jitter
    strengths are torchvision's ``ColorJitter`` arguments: factors drawn
    uniformly from [max(0, 1 - s), 1 + s], hue shifts from [-hue, hue].
    """

    crop_padding: int = 0
    hflip: float = 0.0
    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    hue: float = 0.0

    def __post_init__(self) -> None:
        for name in ("brightness", "contrast", "saturation"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 0")
        if not 0 <= self.hue <= 0.5:
            raise ValueError(f"hue={self.hue} must be in [0, 0.5]")
        if not 0 <= self.hflip <= 1:
            raise ValueError(f"hflip={self.hflip} is a probability: it must be in [0, 1]")
        if self.crop_padding < 0:
            raise ValueError(f"crop_padding={self.crop_padding} must be >= 0")

    @property
    def active(self) -> bool:
        return bool(self.crop_padding or self.hflip or self.brightness or self.contrast or self.saturation or self.hue)

    def sample(self, n: int, size: int, device: torch.device | str = "cpu", generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Independent random parameters for each of ``n`` samples."""

        def uniform(low: float, high: float) -> torch.Tensor:
            return torch.rand(n, device=device, generator=generator) * (high - low) + low

        params: dict[str, torch.Tensor] = {}
        if self.crop_padding:
            span = 2 * self.crop_padding + 1  # offsets 0 .. 2 * padding
            params["top"] = torch.randint(span, (n,), device=device, generator=generator)
            params["left"] = torch.randint(span, (n,), device=device, generator=generator)
        if self.hflip:
            params["flip"] = torch.rand(n, device=device, generator=generator) < self.hflip
        for name in ("brightness", "contrast", "saturation"):
            strength = getattr(self, name)
            if strength:
                params[name] = uniform(max(0.0, 1 - strength), 1 + strength)
        if self.hue:
            params["hue"] = uniform(-self.hue, self.hue)
        if any(name in params for name in JITTER_OPS):
            # a random order of the four jitter operations per sample, as ColorJitter
            params["order"] = torch.rand(n, len(JITTER_OPS), device=device, generator=generator).argsort(dim=1)
        return params

    def apply(self, x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """Augment float images in [0, 1] with the given per-sample parameters."""
        if "top" in params:
            x = crop(x, params["top"], params["left"], x.shape[-1], self.crop_padding)
        if "flip" in params:
            x = hflip(x, params["flip"])
        if "order" in params:
            x = x.clone()  # written in place below, the caller's batch stays as it was
            for position in range(len(JITTER_OPS)):
                chosen = params["order"][:, position]
                for op_index, name in enumerate(JITTER_OPS):
                    if name not in params:
                        continue
                    idx = (chosen == op_index).nonzero().flatten()
                    if len(idx) == len(x):
                        x = _JITTER[name](x, params[name])
                    elif len(idx):
                        x[idx] = _JITTER[name](x[idx], params[name][idx])
        return x

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if not self.active:
            return x
        return self.apply(x, self.sample(len(x), x.shape[-1], x.device, generator))
