"""The LightningCLI of ``zoo predict``, stopping before the trainer runs: its model (weights loaded from the
checkpoint or the catalogue) and DataModule, exactly as ``zoo predict`` would make them, go to the exporter."""

from __future__ import annotations

import argparse

import torch

from zoo.cli import ZooCLI


class ExportCLI(ZooCLI):
    options: argparse.Namespace | None = None

    def _run_subcommand(self, subcommand: str) -> None:
        from zoo.export.command import export

        config = self.config[subcommand]
        ckpt = config.get("ckpt_path")
        if ckpt:
            state = torch.load(ckpt, map_location="cpu", weights_only=True)
            self.model.load_state_dict(state["state_dict"])
            saved = state.get(type(self.datamodule).__qualname__)
            if saved is not None:
                self.datamodule.load_state_dict(saved)  # ImageFolder: the classes it was trained on
        weights = (config.model.get("init_args") or {}).get("weights")
        export(self.model, self.datamodule, ckpt, weights, self.options)
