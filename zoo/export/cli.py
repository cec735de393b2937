"""The LightningCLI of ``zoo predict``, stopping before the trainer runs: its model (weights loaded from the
checkpoint or the catalogue) and DataModule, exactly as ``zoo predict`` would make them, go to ``action``."""

from __future__ import annotations

from collections.abc import Callable

import torch

from zoo.cli import ZooCLI


class ModelCLI(ZooCLI):
    # action(model, datamodule, ckpt_path or None, weights name or None)
    action: Callable | None = None

    def _run_subcommand(self, subcommand: str) -> None:
        config = self.config[subcommand]
        ckpt = config.get("ckpt_path")
        if ckpt:
            state = torch.load(ckpt, map_location="cpu", weights_only=True)
            self.model.load_state_dict(state["state_dict"])
            saved = state.get(type(self.datamodule).__qualname__)
            if saved is not None:
                self.datamodule.load_state_dict(saved)  # ImageFolder: the classes it was trained on
        weights = (config.model.get("init_args") or {}).get("weights")
        type(self).action(self.model.eval(), self.datamodule, ckpt, weights)


def with_model(args: list[str], action: Callable) -> None:
    """Parse ``args`` as ``zoo predict`` would and call ``action`` on what it makes."""
    import sys

    from zoo.cli import cli_main

    ModelCLI.action = staticmethod(action)
    sys.argv = sys.argv[:1] + ["predict", *args]  # the zoo's messages name the subcommand from these words
    cli_main(cls=ModelCLI)
