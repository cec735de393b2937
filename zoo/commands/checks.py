"""Checks of a parsed configuration that LightningCLI does not make, each failing with one line that says the fix."""

from __future__ import annotations

import torch
from lightning.pytorch.cli import instantiate_class

from datamodules.files_predict import list_images
from zoo.training.module import ZooModule
from zoo_common import ConfigError, InputShapeError, class_name


def check_device(trainer) -> None:
    """A GPU preset on a machine without one: name the CPU preset that does the same."""
    if str(trainer.get("accelerator")) in ("gpu", "cuda") and not torch.cuda.is_available():
        several = "ddp" in str(trainer.get("strategy")) or trainer.get("devices") not in (1, "1", None)
        preset = "configs/trainer/ddp_cpu.yaml" if several else "configs/trainer/cpu.yaml"
        raise ConfigError(f"--trainer.accelerator {trainer.accelerator}: this machine has no CUDA GPU; "
                          f"use -c {preset} instead (or --trainer.accelerator cpu)")


def check_optimizer(config) -> None:
    """The optimizer's own range checks (a negative learning rate, say) before anything runs."""
    if config.get("optimizer") is None:
        return
    try:
        instantiate_class([torch.zeros(1, requires_grad=True)], config.optimizer)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"--optimizer {class_name(config.optimizer.class_path)}: {e}") from None


def check_inputs(model, datamodule) -> None:
    """A model that cannot take the data's inputs, or images to classify that are not there, are refused now,
    not at the first batch."""
    if getattr(datamodule, "predict_path", None):
        list_images(datamodule.predict_path)  # raises for a missing file or an empty folder
    shape = getattr(datamodule, "input_shape", None)
    if shape is None or not isinstance(model, ZooModule):
        return
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(2, *shape))
    except RuntimeError as e:
        raise InputShapeError(
            f"{type(model).__name__} cannot take the inputs of {type(datamodule).__name__} "
            f"(shape {tuple(shape)}): {str(e).splitlines()[0]}. Choose a model made for this data "
            "(`zoo list`), or a resize (--data.resize) where the model needs larger images."
        ) from None
    finally:
        model.train(was_training)
    # Lightning's model summary runs one example through the model: its FLOPs and layer sizes (not 0, unknown)
    # (an image DataModule's batches are uint8 until its on_after_batch_transfer, which also handles this one)
    images = hasattr(datamodule, "transform")
    model.example_input_array = torch.zeros(1, *shape, dtype=torch.uint8 if images else torch.float32)
