"""A run started from weights by name gets the data the weights were trained on: the zoo's own weights their
whole input contract from their card (sizes, normalisation, class names), torchvision's their normalisation."""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from zoo.training.runs import read_hparams
from zoo.weights import catalogue
from zoo.weights.pretrained import torchvision_weights
from zoo_common import ConfigError, class_name, import_class


def prepare_weights(config, subcommand: str | None = None) -> None:
    """--model.weights: not loaded under --ckpt_path (the checkpoint holds the trained weights); otherwise the
    data is normalised the way the weights were trained (or we say why not): the zoo's own weights take
    their whole input contract from their card (sizes, normalisation, class names), torchvision's their
    normalisation."""
    model_args = config.model.get("init_args") if config.get("model") else None
    if not model_args or not model_args.get("weights"):
        return
    if config.get("ckpt_path"):
        rank_zero_info(f"--ckpt_path given: not loading --model.weights {model_args.weights}")
        model_args.weights = None
        return
    model = class_name(config.model.class_path)
    if Path(model_args.weights).is_file():
        try:
            saved = class_name(read_hparams(model_args.weights)[0].get("_class_path"))
        except Exception:  # noqa: BLE001 (a plain state dict, or no file of ours: the loader says what is wrong)
            saved = ""
        if saved and saved != model:
            raise ConfigError(f"--model.weights {model_args.weights} holds a {saved}, not a {model}: give weights of "
                              f"a {model}, or train --model {saved} from them")
    data_args = config.data.get("init_args") if config.get("data") else None
    entry = catalogue.find(model, model_args.weights)
    if entry is not None and data_args is not None:
        apply_card(entry, data_args, import_class(config.data.class_path), subcommand)
        return
    tv = torchvision_weights(model, model_args.weights)
    if tv is None or data_args is None or "normalize" not in data_args:
        return
    transforms = tv.transforms()
    data_class = import_class(config.data.class_path)
    # a DataModule with per-run channels and sizes (ImageFolder) has them among its options
    channels = data_args.get("channels") or data_class.in_channels
    mean, std = for_channels(list(transforms.mean), list(transforms.std), channels)
    data_args.normalize, data_args.mean, data_args.std = True, mean, std
    rank_zero_info(f"{tv}: normalising the data with its mean {mean} and std {std}")
    size_option = "crop_size" if "crop_size" in data_args else "resize"
    size = data_args.get(size_option) or data_class.native_size
    if size != transforms.crop_size[0]:
        rank_zero_warn(f"{tv} was trained on {transforms.crop_size[0]} px images; the data runs at {size} px "
                       f"(--data.{size_option} {transforms.crop_size[0]} matches it)")


def for_channels(mean: list[float], std: list[float], channels: int) -> tuple[list[float], list[float]]:
    """Normalisation statistics for data with another number of channels: a gray image stands for R = G = B,
    so it takes the average statistics (and a colour image, gray weights' one value on every channel)."""
    if len(mean) == channels:
        return mean, std
    return [sum(mean) / len(mean)] * channels, [sum(std) / len(std)] * channels


def apply_card(entry, data_args, data_class, subcommand: str | None) -> None:
    """The data as the weights' card says they were trained on. On the card's own DataModule everything
    (for fine-tuning, everything but the classes); on other data the normalisation, and a warning where
    the size differs."""
    same = data_class.__name__ == entry.data
    contract = {k: v for k, v in entry.data_args.items() if k in data_args}
    if not same or subcommand == "fit":
        contract.pop("classes", None)
    if not same:
        contract = {k: v for k, v in contract.items() if k in ("normalize", "mean", "std")}
        if contract.get("normalize"):
            channels = data_args.get("channels") or data_class.in_channels
            contract["mean"], contract["std"] = for_channels(contract["mean"], contract["std"], channels)
    for key, value in contract.items():
        data_args[key] = value
    norm = (f"normalised with mean {contract['mean']} and std {contract['std']}" if contract.get("normalize")
            else "not normalised" if "normalize" in contract else "")
    shown = ", ".join(x for x in (f"{entry.input['size']} px" if same else "", norm) if x)
    rank_zero_info(f"{entry.model} {entry.name}: the data as its card says ({shown})")
    if not same:
        size = data_args.get("crop_size") or data_args.get("resize") or data_class.native_size
        if size != entry.input["size"]:
            option = "crop_size" if "crop_size" in data_args else "resize"
            rank_zero_warn(f"{entry.model} {entry.name} was trained on {entry.input['size']} px images; the data runs "
                           f"at {size} px (--data.{option} {entry.input['size']} matches it)")
