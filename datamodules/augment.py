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

import math
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


#: samples per pass of the hue change: its dozen passes over the pixels then stay in the CPU's cache (at 224 px,
#: 8 samples are 4.8 MB of floats); at 32 x 224 px on 2 cores, 31 -> 19 ms a batch (1 thread: 42 -> 32 ms)
HUE_CHUNK = 8


def adjust_hue_(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """``hsv_to_rgb(rgb_to_hsv(x) + (shift, 0, 0))`` in one pass, without materialising HSV.

    With v = max, delta = max - min (= v * s) and the hue h6 in sixths of a turn,
    channel n of the result is v - delta * clamp(min(k, 4 - k), 0, 1) with
    k = (n + h6) mod 6, n = 5, 3, 1 for red, green, blue: the textbook sector
    table in closed form, computed in a preallocated workspace, ``HUE_CHUNK``
    samples at a time.
    """
    if x.shape[1] == 1:  # a gray image has no hue
        return x
    work = x.new_empty((4, min(len(x), HUE_CHUNK), *x.shape[2:]))
    for start in range(0, len(x), HUE_CHUNK):
        part = x[start:start + HUE_CHUNK]
        _hue_(part, shift[start:start + HUE_CHUNK], work[:, : len(part)])
    return x


def _hue_(x: torch.Tensor, shift: torch.Tensor, work: torch.Tensor) -> None:
    r, g, b = x.unbind(dim=1)
    maxc, delta, h6, t = work.unbind(0)
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


# --- random resized crop (torchvision's ``RandomResizedCrop``, per sample, for a whole batch) -------------


def center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """The central ``size`` x ``size`` window of each image, placed as ``transforms.v2.functional.center_crop``."""
    h, w = x.shape[-2:]
    if size > h or size > w:
        raise ConfigError(f"crop size {size} is larger than the {h} x {w} images")
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    return x[..., top : top + size, left : left + size]


def sample_resized_crop_boxes(
    n: int,
    height: int,
    width: int,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
    tries: int = 10,
) -> torch.Tensor:
    """``n`` boxes (top, left, height, width) drawn as ``RandomResizedCrop.make_params`` draws one.

    Each sample gets the same ten tries (area fraction uniform in ``scale``, log
    aspect ratio uniform in ``log(ratio)``, sides rounded) and keeps its first box
    that fits; a sample none of whose tries fits falls back to torchvision's
    central crop with the ratio clamped. Returns an ``n x 4`` int64 tensor.
    """
    area = height * width
    u = torch.rand(2, n, tries, device=device, generator=generator, dtype=torch.float64)
    target = area * (u[0] * (scale[1] - scale[0]) + scale[0])
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(u[1] * (log_hi - log_lo) + log_lo)
    w = torch.sqrt(target * aspect).round().long()
    h = torch.sqrt(target / aspect).round().long()
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = fits.long().argmax(dim=1, keepdim=True)  # index of the first fitting try (0 when none fits)
    w, h, found = w.gather(1, first).squeeze(1), h.gather(1, first).squeeze(1), fits.any(dim=1)
    # the fallback box of torchvision: the whole image, with the aspect ratio clamped into ``ratio``
    in_ratio = width / height
    if in_ratio < min(ratio):
        fw, fh = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        fw, fh = int(round(height * max(ratio))), height
    else:
        fw, fh = width, height
    w = torch.where(found, w, fw)
    h = torch.where(found, h, fh)
    # a uniform integer offset in [0, side - crop] for each sample (floor of a uniform float)
    r = torch.rand(2, n, device=device, generator=generator, dtype=torch.float64)
    top = torch.where(found, (r[0] * (height - h + 1)).floor().long(), (height - fh) // 2)
    left = torch.where(found, (r[1] * (width - w + 1)).floor().long(), (width - fw) // 2)
    return torch.stack([top, left, h, w], dim=1)


def _antialias_weights(start: torch.Tensor, length: torch.Tensor, size: int, out: int) -> torch.Tensor:
    """``N x out x size`` matrices that resample ``[start, start + length)`` of each row to ``out`` values.

    The triangle filter of ``F.interpolate(mode="bilinear", antialias=True)`` (Pillow's), widened by the
    scale when shrinking and renormalised at the window's edges, as PyTorch computes it.
    """
    device = start.device
    scale = (length.double() / out).view(-1, 1, 1)  # N x 1 x 1
    support = torch.clamp(scale, min=1.0)  # half-width of the triangle in source pixels
    center = scale * (torch.arange(out, device=device, dtype=torch.float64).view(1, -1, 1) + 0.5)
    lo = torch.clamp((center - support + 0.5).trunc(), min=0)
    hi = torch.minimum((center + support + 0.5).trunc(), length.double().view(-1, 1, 1))
    j = torch.arange(size, device=device, dtype=torch.float64).view(1, 1, -1) - start.double().view(-1, 1, 1)
    weight = torch.clamp(1 - ((j - center + 0.5) / support).abs(), min=0) * ((j >= lo) & (j < hi))
    return weight / weight.sum(dim=2, keepdim=True)


def resized_crop(x: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Crop each float image of ``x`` to its box (top, left, height, width), resized to ``size`` x ``size``.

    What ``transforms.v2.functional.resized_crop(..., antialias=True)`` computes, for a batch with one
    box per sample, as two batched matrix products (rows, then columns): on a GPU, a few large kernels
    instead of one small resize per sample.
    """
    top, left, h, w = boxes.unbind(1)
    rows = _antialias_weights(top, h, x.shape[-2], size).to(x.dtype)  # N x size x H
    cols = _antialias_weights(left, w, x.shape[-1], size).to(x.dtype)  # N x size x W
    return rows.unsqueeze(1) @ x @ cols.transpose(1, 2).unsqueeze(1)  # N x C x size x size


def resized_crop_uint8(x: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """``resized_crop`` for uint8 images, rounded back to uint8 as torchvision does.

    On a CPU, PyTorch's own uint8 resize (vectorised) per sample is the faster way; on other
    devices the batched matrix products.
    """
    if x.device.type == "cpu":
        out = x.new_empty((len(x), x.shape[1], size, size))
        for i, (top, left, h, w) in enumerate(boxes.tolist()):
            crop = x[i : i + 1, :, top : top + h, left : left + w]
            out[i : i + 1] = F.interpolate(crop, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        return out
    return resized_crop(x.float(), boxes, size).round_().clamp_(0, 255).to(torch.uint8)


@dataclass
class RandomResizedCrop:
    """torchvision's ``RandomResizedCrop(size, scale, ratio)`` (bilinear, antialiased), a box per sample."""

    size: int
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)

    def __post_init__(self) -> None:
        self.scale, self.ratio = tuple(float(s) for s in self.scale), tuple(float(r) for r in self.ratio)
        if self.size < 1:
            raise ConfigError(f"crop size {self.size} must be >= 1")
        if len(self.scale) != 2 or not 0 < self.scale[0] <= self.scale[1]:
            raise ConfigError(f"scale={self.scale}: give (low, high) area fractions with 0 < low <= high")
        if len(self.ratio) != 2 or not 0 < self.ratio[0] <= self.ratio[1]:
            raise ConfigError(f"ratio={self.ratio}: give (low, high) aspect ratios with 0 < low <= high")

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        boxes = sample_resized_crop_boxes(len(x), x.shape[-2], x.shape[-1], self.scale, self.ratio, x.device, generator)
        if x.dtype == torch.uint8:
            return resized_crop_uint8(x, boxes, self.size)
        return resized_crop(x, boxes, self.size)
