"""The one resolver of pretrained weights: the zoo's own or torchvision's by name, or checkpoints and state dicts.

Everything is loaded with ``torch.load(weights_only=True)``: a file that needs
arbitrary code to unpickle is refused. torchvision's files come through
``torch.hub`` with their sha256 checked, also when they are already in its cache. Tensors whose shapes differ are adapted
only where that has a meaning: a classification head for another number of
classes starts new, and a first convolution for another number of input
channels is summed (3 -> 1) or repeated and scaled (1 -> 3); any other mismatch
is an error that names the tensors.
"""

from __future__ import annotations

import os
import pickle
import re
import urllib.error
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import torch
import torchvision.models
from lightning.pytorch.utilities import rank_zero_info
from torch import nn

from zoo.weights import catalogue
from zoo.weights.catalogue import sha256_of
from zoo.weights.identify import identify
from zoo_common import ZooError, class_name, list_models

# zoo model -> torchvision builder whose state dicts fit its network (the weights come from torchvision's registry)
TORCHVISION_MODELS = {"ResNet18": "resnet18"}


class WeightsError(ZooError, RuntimeError):
    """Weights that cannot be found, read or fitted; the message says which and what to do."""


@dataclass
class Pretrained:
    """Weights to start from, where they came from, and which architecture they say they are (if they say)."""

    state: dict[str, torch.Tensor]
    source: str
    architecture: str | None = None


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


def torchvision_weights_enum(model: str):
    """torchvision's weights enum for this zoo model (e.g. ``ResNet18_Weights``), or None."""
    builder = TORCHVISION_MODELS.get(model)
    return torchvision.models.get_model_weights(builder) if builder else None


def torchvision_weights(model: str, name: str):
    """The torchvision weights enum member called ``name`` for this zoo model, or None."""
    enum = torchvision_weights_enum(model)
    return enum.__members__.get(name) if enum is not None else None


def cache_path(weights) -> Path:
    """Where torch.hub keeps a torchvision weights file: ``$TORCH_HOME/hub/checkpoints/<file>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(weights.url).path)


def _torch_load(path: Path):
    """``torch.load(path, weights_only=True)``, its errors turned into one that says what to do."""
    with open(path, "rb") as f:
        head = f.read(4)
    # torch.save writes a zip archive (PK..); older files are a pickle (protocol byte 0x80)
    if not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):
        raise WeightsError(f"{path} is not a PyTorch weights file (neither torch.save's zip archive nor a pickle); "
                           "give a .ckpt written by `zoo fit`, a state dict saved with torch.save, or a weights name")
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol")  # a damaged file is said below
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        unsafe = re.search(r"Unsupported global: (?:GLOBAL )?([\w.]+)", str(e))
        if unsafe:
            raise WeightsError(
                f"{path} refused: loading it would run arbitrary code (it calls {unsafe.group(1)}). Only checkpoints "
                "and state dicts of plain tensors are loaded; re-save the weights with torch.save(model.state_dict(), path)."
            ) from None
        raise WeightsError(f"{path} is damaged or not PyTorch weights (its pickle does not load); copy the file "
                           "again") from None
    except Exception as e:  # noqa: BLE001 (a truncated archive, a corrupt pickle: torch raises many kinds)
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise WeightsError(f"{path} cannot be read as PyTorch weights ({type(e).__name__}: {first}); it may be "
                           "truncated or damaged: copy the file again") from None


def _state_dict(obj, path: Path) -> tuple[dict[str, torch.Tensor], str | None]:
    """(the network's state dict, the model class a zoo checkpoint records) from what torch.load returned."""
    architecture = None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):  # a Lightning checkpoint
        hparams = obj.get("hyper_parameters")
        architecture = class_name(hparams.get("_class_path")) if isinstance(hparams, dict) else None
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{path} holds no state dict (a mapping of names to tensors)")
    if any(k.startswith("net.") for k in obj):  # a zoo LightningModule's state dict: keep its network
        obj = {k[len("net."):]: v for k, v in obj.items() if k.startswith("net.")}
    return obj, architecture


def load_pretrained_file(path: str | os.PathLike) -> Pretrained:
    """The network's state dict from a state-dict file or a Lightning checkpoint, read without running code."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {path} not found")
    state, architecture = _state_dict(_torch_load(path), path)
    return Pretrained(state, str(path), architecture)


def sha256_prefix(name: str) -> str | None:
    """The sha256 prefix a torch.hub file name carries (``resnet18-f37072fd.pth``), as its ``check_hash`` reads it."""
    match = torch.hub.HASH_REGEX.search(name)
    return match.group(1) if match and match.group(1) else None


def check_cached(path: Path, url: str) -> None:
    """Refuse a cached file whose content is not what its name promises."""
    expected = sha256_prefix(path.name)
    if expected is None:
        return
    actual = sha256_of(path)
    if not actual.startswith(expected):
        raise WeightsError(
            f"{path} is not the file its name promises: sha256 {actual}, expected one starting with {expected}. "
            f"Delete it to download it again, or replace it with the file from {url}"
        )


def fetch_torchvision(weights) -> dict[str, torch.Tensor]:
    """torchvision's weights from torch.hub's cache, downloaded there first if missing; sha256-checked either way."""
    path = cache_path(weights)
    if path.exists():
        check_cached(path, weights.url)  # torch.hub checks a file's hash when it downloads it, not in its cache
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # what load_state_dict_from_url(check_hash=True) does: a temporary file, its sha256 checked against
            # the name, then moved into the cache; the file is then read by this module's one loader
            torch.hub.download_url_to_file(weights.url, str(path), hash_prefix=sha256_prefix(path.name),
                                           progress=False)
        except (urllib.error.URLError, OSError) as e:
            raise WeightsError(
                f"{weights} is not in the cache and cannot be downloaded ({getattr(e, 'reason', e)}).\n"
                f"Put the file at {path}\nfetched from {weights.url}\n"
                "(on a machine with network: curl -L -o FILE URL; or point TORCH_HOME at a folder holding "
                "hub/checkpoints/ with the file)."
            ) from None
        except RuntimeError as e:  # torch.hub: 'invalid hash value (expected "...", got "...")'
            raise WeightsError(f"the download of {weights.url} is not the file its name promises: {e}; nothing "
                               f"was saved. Try again, or fetch the file elsewhere and put it at {path}") from None
    return _state_dict(_torch_load(path), path)[0]


def resolve(model: str, weights: str) -> Pretrained:
    """The weights called ``weights`` (a zoo catalogue name, a torchvision name or a file) for the zoo model
    ``model``."""
    entry = catalogue.find(model, weights)
    if entry is not None:
        state, path = catalogue.load(entry)
        return Pretrained(state, f"d2l-zoo {model} {weights} ({path})", model)
    tv = torchvision_weights(model, weights)
    if tv is not None:
        return Pretrained(fetch_torchvision(tv), f"torchvision {tv} ({cache_path(tv)})",
                          f"torchvision's {TORCHVISION_MODELS[model]}")
    if Path(weights).exists():
        return load_pretrained_file(weights)
    enum = torchvision_weights_enum(model)
    names = catalogue.names_for(model) + (list(enum.__members__) if enum is not None else [])
    if catalogue.is_weights_name(weights):
        raise WeightsError(f"--model.weights {weights}: {catalogue.unknown_name(model, weights)}"
                           + (f"; torchvision's: {', '.join(enum.__members__)}" if enum is not None else ""))
    choices = f"a weights name ({', '.join(names)}) or " if names else ""
    raise WeightsError(f"--model.weights {weights!r} for {model}: give {choices}the path of a checkpoint or state dict")


def adapt_channels(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """A first convolution's weights for another number of input channels, same response to gray images."""
    have = weight.shape[1]
    if in_channels == 1:
        return weight.sum(dim=1, keepdim=True)  # a gray image is R = G = B: the filters add up
    if have == 1:
        return weight.repeat(1, in_channels, 1, 1) / in_channels
    raise WeightsError(f"cannot adapt a first convolution from {have} to {in_channels} input channels")


def fit_state_dict(net: nn.Module, pretrained: Pretrained, head: str, stem: str, model: str = "") -> LoadReport:
    """Load the weights into ``net`` (the network of zoo model ``model``): same shapes load, the head may be
    replaced, the stem adapted; anything else is an error that names the architecture the weights hold."""
    state, source = pretrained.state, pretrained.source
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
        raise WeightsError(f"the weights in {source} do not fit this network{f' ({model})' if model else ''}: "
                           f"{_holder(pretrained, model)}:\n  " + "\n  ".join(details or ["no tensor in common"]))
    net.load_state_dict(fitted, strict=False)
    return report


def _holder(pretrained: Pretrained, model: str) -> str:
    """What the weights are, in words: the class their checkpoint names, else the layouts their tensor names match."""
    if pretrained.architecture:
        holders, how = [pretrained.architecture], "as their checkpoint records"
    else:
        holders, how = identify(pretrained.state), "by their tensor names"
    if not holders:
        return "they belong to an architecture that neither the zoo nor torchvision's ResNets have"
    if model in holders:
        return f"they are a {model}'s ({how}) built with other options; give the options they were trained with"
    zoo = [h for h in holders if h in list_models()]
    hint = f"; to use them, choose --model {zoo[0]}" if zoo else ""
    return f"they are {' or '.join(holders)} weights ({how}){hint}"


def load_into(model) -> None:
    """A zoo classifier's ``weights`` loaded into its network, its head and stem as its class declares them
    (``ClassificationModule.weights_loader``)."""
    name = type(model).__name__
    report = fit_state_dict(model.net, resolve(name, model.weights), model.head_prefix, model.stem_key, name)
    rank_zero_info(str(report))
