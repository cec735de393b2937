"""Starting a model from pretrained weights: torchvision's by name, or our own checkpoints and state dicts.

Everything is loaded with ``torch.load(weights_only=True)``: a file that needs
arbitrary code to unpickle is refused. Tensors whose shapes differ are adapted
only where that has a meaning: a classification head for another number of
classes starts new, and a first convolution for another number of input
channels is summed (3 -> 1) or repeated and scaled (1 -> 3); any other mismatch
is an error that names the tensors.
"""

from __future__ import annotations

import os
import pickle
import urllib.error
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import torch
import torchvision.models
from torch import nn

from zoo_common import ZooError

# zoo model -> torchvision weights enum whose state dicts fit its network
TORCHVISION_WEIGHTS = {"ResNet18": "ResNet18_Weights"}


class WeightsError(ZooError, RuntimeError):
    """Weights that cannot be found, read or fitted; the message says which and what to do."""


@dataclass
class LoadReport:
    source: str
    loaded: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    adapted: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"Weights from {self.source}: {len(self.loaded)} tensors loaded"]
        for title, items in (("adapted", self.adapted), ("replaced (new head)", self.replaced), ("left new", self.new)):
            if items:
                lines.append(f"  {title}: " + ", ".join(items))
        return "\n".join(lines)


def torchvision_weights(model: str, name: str):
    """The torchvision weights enum member called ``name`` for this zoo model, or None."""
    enum_name = TORCHVISION_WEIGHTS.get(model)
    if enum_name is None:
        return None
    enum = getattr(torchvision.models, enum_name)
    return enum.__members__.get(name)


def cache_path(weights) -> Path:
    """Where torch.hub keeps a torchvision weights file: ``$TORCH_HOME/hub/checkpoints/<file>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(weights.url).path)


def load_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A plain state dict from a state-dict file or a Lightning checkpoint, read without running code."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {path} not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0]
        raise WeightsError(
            f"{path} refused: loading it would run arbitrary code ({first}). Only checkpoints and state dicts of "
            "plain tensors are loaded; re-save the weights with torch.save(model.state_dict(), path)."
        ) from None
    except (RuntimeError, EOFError, ValueError) as e:
        raise WeightsError(f"{path} cannot be read as PyTorch weights: {e}") from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]  # a Lightning checkpoint
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{path} holds no state dict (a mapping of names to tensors)")
    if any(k.startswith("net.") for k in obj):  # a zoo LightningModule's state dict: keep its network
        obj = {k[len("net."):]: v for k, v in obj.items() if k.startswith("net.")}
    return obj


def fetch_torchvision(weights) -> dict[str, torch.Tensor]:
    path = cache_path(weights)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            torch.hub.download_url_to_file(weights.url, str(path), progress=False)  # writes a temp file, then moves
        except (urllib.error.URLError, OSError) as e:
            raise WeightsError(
                f"{weights} is not in the cache and cannot be downloaded ({getattr(e, 'reason', e)}).\n"
                f"Put the file at {path}\nfetched from {weights.url}\n"
                "(on a machine with network: curl -L -o FILE URL; or point TORCH_HOME at a folder holding "
                "hub/checkpoints/ with the file)."
            ) from None
    return load_state_dict(path)


def resolve(model: str, weights: str) -> tuple[dict[str, torch.Tensor], str]:
    """(state dict of the network, a description of where it came from)."""
    tv = torchvision_weights(model, weights)
    if tv is not None:
        return fetch_torchvision(tv), f"torchvision {tv} ({cache_path(tv)})"
    if Path(weights).exists():
        return load_state_dict(weights), str(weights)
    names = list(getattr(torchvision.models, TORCHVISION_WEIGHTS[model]).__members__) if model in TORCHVISION_WEIGHTS else []
    choices = f"a torchvision weights name ({', '.join(names)}) or " if names else ""
    raise WeightsError(f"--model.weights {weights!r} for {model}: give {choices}the path of a checkpoint or state dict")


def adapt_channels(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """A first convolution's weights for another number of input channels, same response to gray images."""
    have = weight.shape[1]
    if in_channels == 1:
        return weight.sum(dim=1, keepdim=True)  # a gray image is R = G = B: the filters add up
    if have == 1:
        return weight.repeat(1, in_channels, 1, 1) / in_channels
    raise WeightsError(f"cannot adapt a first convolution from {have} to {in_channels} input channels")


def fit_state_dict(net: nn.Module, state: dict[str, torch.Tensor], head: str, stem: str, source: str) -> LoadReport:
    """Load ``state`` into ``net``: same shapes load, the head may be replaced, the stem adapted; else an error."""
    own = net.state_dict()
    report = LoadReport(source)
    fitted: dict[str, torch.Tensor] = {}
    errors = []
    for key, target in own.items():
        if key not in state:
            report.new.append(key)
            continue
        src = state[key]
        if src.shape == target.shape:
            fitted[key] = src
            report.loaded.append(key)
        elif key.startswith(head):
            report.replaced.append(f"{key} {tuple(src.shape)} -> {tuple(target.shape)}")
        elif key == stem and src.dim() == 4 and src.shape[0] == target.shape[0] and src.shape[2:] == target.shape[2:]:
            fitted[key] = adapt_channels(src, target.shape[1])
            report.adapted.append(f"{key} {tuple(src.shape)} -> {tuple(target.shape)}")
        else:
            errors.append(f"{key}: weights {tuple(src.shape)}, model {tuple(target.shape)}")
    unexpected = [k for k in state if k not in own]
    if errors or unexpected or not fitted:
        details = errors + [f"{k}: in the weights, not in the model" for k in unexpected[:10]]
        raise WeightsError(
            f"the weights in {source} do not fit this network (another architecture?):\n  " + "\n  ".join(details or ["no tensor in common"])
        )
    net.load_state_dict(fitted, strict=False)
    return report
