"""``sync_batchnorm`` for the zoo's own BatchNorm as well as ``nn.BatchNorm`` (a Lightning layer-sync plugin)."""

from __future__ import annotations

from lightning.pytorch.plugins.layer_sync import TorchSyncBatchNorm
from torch import nn

from zoo.layers.batchnorm import BatchNorm


class BatchNormSync(TorchSyncBatchNorm):
    """Lightning's ``nn.SyncBatchNorm`` conversion, and ``sync=True`` on every from-scratch ``BatchNorm``.

    The CLI passes it with ``--trainer.sync_batchnorm true``; Lightning applies it when fitting under DDP.
    """

    def apply(self, model: nn.Module) -> nn.Module:
        for m in model.modules():
            if isinstance(m, BatchNorm):
                m.sync = True
        return super().apply(model)

    def revert(self, model: nn.Module) -> nn.Module:
        for m in model.modules():
            if isinstance(m, BatchNorm):
                m.sync = False
        return super().revert(model)
