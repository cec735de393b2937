"""Batch normalization written out, *Dive into Deep Learning* 8.5.

The same arithmetic as ``nn.BatchNorm1d/2d``, spelled out: batch statistics
in training (biased variance to normalise, unbiased variance into the running
estimate), running statistics in evaluation, ``momentum`` and ``eps`` with
PyTorch's meaning. Parameter and buffer names match ``nn.BatchNorm`` so state
dicts move between the two.

Under DDP, ``sync=True`` computes the batch statistics over all processes, as
``nn.SyncBatchNorm`` does (the zoo's models turn it on when the trainer is
given ``sync_batchnorm=True``); otherwise each process normalises by its own
batch.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.nn.functional import all_reduce


class BatchNorm(nn.Module):
    """Batch normalization for (N, C) and (N, C, H, W) inputs, without ``F.batch_norm``."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, sync: bool = False) -> None:
        super().__init__()
        self.num_features, self.eps, self.momentum, self.sync = num_features, eps, momentum, sync
        self.weight = nn.Parameter(torch.ones(num_features))  # gamma
        self.bias = nn.Parameter(torch.zeros(num_features))  # beta
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() not in (2, 4) or x.shape[1] != self.num_features:
            raise ValueError(f"BatchNorm({self.num_features}) expects N x {self.num_features} or "
                             f"N x {self.num_features} x H x W input, got {tuple(x.shape)}")
        dims = (0,) if x.dim() == 2 else (0, 2, 3)  # statistics per channel
        shape = (1, -1) if x.dim() == 2 else (1, -1, 1, 1)
        # statistics in float32 also under bf16/fp16 autocast (as nn.BatchNorm): the running buffers stay float32
        dtype, x = x.dtype, x.float()
        if self.training:
            n = x.numel() // x.shape[1]
            if self.sync and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
                # sums over every process; all_reduce from torch.distributed.nn carries gradients back
                n = int(all_reduce(torch.tensor(float(n), device=x.device)).item())
                mean = all_reduce(x.sum(dim=dims, keepdim=True)) / n
                var = all_reduce(((x - mean) ** 2).sum(dim=dims, keepdim=True)) / n
            else:
                mean = x.mean(dim=dims, keepdim=True)
                var = ((x - mean) ** 2).mean(dim=dims, keepdim=True)
            with torch.no_grad():
                unbiased = var.flatten() * n / max(n - 1, 1)
                self.running_mean.lerp_(mean.flatten(), self.momentum)
                self.running_var.lerp_(unbiased, self.momentum)
                self.num_batches_tracked += 1
        else:
            mean, var = self.running_mean.view(shape), self.running_var.view(shape)
        x_hat = (x - mean) / torch.sqrt(var + self.eps)
        return (self.weight.view(shape) * x_hat + self.bias.view(shape)).to(dtype)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, sync={self.sync}"
