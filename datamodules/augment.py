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

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from zoo_common import ConfigError

_GRAY = (0.2989, 0.587, 0.114)  # ITU-R 601-2 luma, as torchvision and PIL
JITTER_OPS = ("brightness", "contrast", "saturation", "hue")


def _per_sample(factor: torch.Tensor) -> torch.Tensor:
    return factor.view(-1, 1, 1, 1)


def grayscale(x: torch.Tensor) -> torch.Tensor:
    """N x 3 x H x W -> N x 1 x H x W luma."""
    r, g, b = x.unbind(dim=1)
    return (_GRAY[0] * r).add_(g, alpha=_GRAY[1]).add_(b, alpha=_GRAY[2]).unsqueeze(1)


# The jitter operations write into their input (the caller passes a copy): on a CPU, allocating a fresh
# batch-sized tensor for each step costs more than the arithmetic.

def adjust_brightness_(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return x.mul_(_per_sample(factor)).clamp_(0, 1)


def _blend_(x: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    # factor * x + (1 - factor) * other
    return x.lerp_(other.expand_as(x), 1 - _per_sample(factor)).clamp_(0, 1)


def adjust_contrast_(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    gray = grayscale(x) if x.shape[1] == 3 else x
    return _blend_(x, gray.mean(dim=(1, 2, 3), keepdim=True), factor)


def adjust_saturation_(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    if x.shape[1] == 1:  # no color to saturate (torchvision and PIL return the image)
        return x
    return _blend_(x, grayscale(x), factor)


def adjust_hue_(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """``hsv_to_rgb(rgb_to_hsv(x) + (shift, 0, 0))`` in one pass, without materialising HSV.

    With v = max, delta = max - min (= v * s) and the hue h6 in sixths of a turn,
    channel n of the result is v - delta * clamp(min(k, 4 - k), 0, 1) with
    k = (n + h6) mod 6, n = 5, 3, 1 for red, green, blue: the textbook sector
    table in closed form, computed in a preallocated workspace.
    """
    if x.shape[1] == 1:  # a gray image has no hue
        return x
    r, g, b = x.unbind(dim=1)
    maxc, delta, h6, t = x.new_empty((4, x.shape[0], *x.shape[2:])).unbind(0)
    torch.maximum(torch.maximum(r, g, out=maxc), b, out=maxc)
    torch.minimum(torch.minimum(r, g, out=delta), b, out=delta)
    torch.sub(maxc, delta, out=delta)
    is_r = maxc == r
    is_g = (maxc == g).logical_and_(~is_r)  # red wins ties, as in torchvision
    is_b = ~(is_r | is_g)
    # h6 * delta: g - b where red is largest, b - r + 2 delta where green, r - g + 4 delta where blue
    torch.mul(torch.sub(g, b, out=t), is_r, out=h6)
    h6.add_(torch.sub(b, r, out=t).add_(delta, alpha=2).mul_(is_g))
    h6.add_(torch.sub(r, g, out=t).add_(delta, alpha=4).mul_(is_b))
    h6.div_(torch.clamp_min(delta, 1e-12, out=t))  # gray pixels: delta = 0 and so is the numerator
    h6.add_(6 * shift.view(-1, 1, 1))
    for c, n in enumerate((5.0, 3.0, 1.0)):
        k = torch.add(h6, n, out=t).remainder_(6.0)
        k = torch.minimum(k, 4.0 - k, out=k).clamp_(0, 1).mul_(delta)
        x.select(1, c).copy_(torch.sub(maxc, k, out=k))
    return x


_JITTER = {"brightness": adjust_brightness_, "contrast": adjust_contrast_, "saturation": adjust_saturation_,
           "hue": adjust_hue_}


def crop_flip(x: torch.Tensor, top: torch.Tensor, left: torch.Tensor, flip: torch.Tensor, padding: int) -> torch.Tensor:
    """Zero-pad by ``padding``, take the H x W window at (top, left) of each sample, mirrored where ``flip``.

    One gather of precomputed source positions: cheaper than cropping and flipping separately.
    """
    n, c, h, w = x.shape
    if padding:
        x = F.pad(x, (padding,) * 4)
    wide = x.shape[-1]
    rows = top.view(n, 1) + torch.arange(h, device=x.device)  # N x H source rows
    j = torch.arange(w, device=x.device)
    cols = left.view(n, 1) + torch.where(flip.view(n, 1), w - 1 - j, j)  # N x W source columns
    index = (rows.view(n, h, 1) * wide + cols.view(n, 1, w)).view(n, 1, h * w).expand(n, c, h * w)
    return x.flatten(2).gather(2, index).view(n, c, h, w)


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
    _workspace: torch.Tensor | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("brightness", "contrast", "saturation"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}={getattr(self, name)} must be >= 0")
        if not 0 <= self.hue <= 0.5:
            raise ConfigError(f"hue={self.hue} must be in [0, 0.5]")
        if not 0 <= self.hflip <= 1:
            raise ConfigError(f"hflip={self.hflip} is a probability: it must be in [0, 1]")
        if self.crop_padding < 0:
            raise ConfigError(f"crop_padding={self.crop_padding} must be >= 0")

    @property
    def active(self) -> bool:
        return bool(self.crop_padding or self.hflip or self.brightness or self.contrast or self.saturation or self.hue)

    def sample(
        self, n: int, device: torch.device | str = "cpu", generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
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

    def geometric(self, x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """Crop and flip: exact on any dtype, so they can run on uint8 before the conversion to float."""
        if "top" not in params and "flip" not in params:
            return x
        zeros = torch.zeros(len(x), dtype=torch.long, device=x.device)
        top, left = params.get("top", zeros), params.get("left", zeros)
        flip = params.get("flip", torch.zeros(len(x), dtype=torch.bool, device=x.device))
        return crop_flip(x, top, left, flip, self.crop_padding if "top" in params else 0)

    def color_(self, x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """Color jitter of float images in [0, 1], in place, each sample's four operations in its own order.

        At each of the four positions the batch is reordered so that the samples
        doing the same operation there are one contiguous slice, which that
        operation changes in place; a last gather writes the result back into ``x``
        in the original order.
        """
        if "order" not in params:
            return x
        order = params["order"]
        current = torch.arange(len(x), device=x.device)  # which original sample sits at each row
        buffers = self._buffers(x)
        y = x
        for position in range(len(JITTER_OPS)):
            key = order[current, position]
            step = key.argsort(stable=True)
            y = torch.index_select(y, 0, step, out=buffers[position % 2])
            current = current[step]
            counts = torch.bincount(key, minlength=len(JITTER_OPS)).tolist()
            start = 0
            for op_index, name in enumerate(JITTER_OPS):
                end = start + counts[op_index]
                if end > start and name in params:
                    _JITTER[name](y[start:end], params[name][current[start:end]])
                start = end
        return torch.index_select(y, 0, current.argsort(), out=x)

    def _buffers(self, x: torch.Tensor) -> torch.Tensor:
        # Kept between batches: on a CPU, touching fresh memory every batch costs as much as the arithmetic.
        ws = self._workspace
        if ws is None or ws.shape[1:] != x.shape or ws.dtype != x.dtype or ws.device != x.device:
            ws = self._workspace = torch.empty((2, *x.shape), dtype=x.dtype, device=x.device)
        return ws

    def apply(self, x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """Augment float images in [0, 1] with the given per-sample parameters (``x`` is left as it was)."""
        y = self.geometric(x, params)
        return self.color_(y.clone() if y is x else y, params)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if not self.active:
            return x
        return self.apply(x, self.sample(len(x), x.device, generator))
