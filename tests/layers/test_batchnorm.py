"""The from-scratch BatchNorm against nn.BatchNorm1d/2d: outputs, gradients, running statistics."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from zoo.layers.batchnorm import BatchNorm


@pytest.mark.parametrize("shape,reference", [((16, 5), nn.BatchNorm1d), ((8, 5, 6, 7), nn.BatchNorm2d)])
@pytest.mark.parametrize("momentum", [0.1, 0.3])
def test_matches_torch_batchnorm(shape, reference, momentum):
    torch.manual_seed(0)
    ours, theirs = BatchNorm(5, momentum=momentum), reference(5, momentum=momentum)
    with torch.no_grad():  # learnable gamma and beta away from 1 and 0
        for bn in (ours, theirs):
            bn.weight.copy_(torch.linspace(0.5, 2.0, 5))
            bn.bias.copy_(torch.linspace(-1.0, 1.0, 5))
    for step in range(4):
        x = (torch.randn(*shape) * (step + 1) + step).requires_grad_()
        x2 = x.detach().clone().requires_grad_()
        y, y2 = ours(x), theirs(x2)
        torch.testing.assert_close(y, y2, rtol=1e-5, atol=1e-5)
        upstream = torch.randn_like(y)
        (y * upstream).sum().backward()
        (y2 * upstream).sum().backward()
        torch.testing.assert_close(x.grad, x2.grad, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(ours.weight.grad, theirs.weight.grad, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(ours.bias.grad, theirs.bias.grad, rtol=1e-5, atol=1e-5)
        ours.zero_grad(), theirs.zero_grad()
    torch.testing.assert_close(ours.running_mean, theirs.running_mean, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours.running_var, theirs.running_var, rtol=1e-5, atol=1e-5)
    assert ours.num_batches_tracked == theirs.num_batches_tracked == 4
    ours.eval(), theirs.eval()
    x = torch.randn(*shape)
    torch.testing.assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-5)


def test_state_dict_keys_match_torch():
    assert BatchNorm(3).state_dict().keys() == nn.BatchNorm2d(3).state_dict().keys()


def test_rejects_wrong_rank_and_channels():
    with pytest.raises(ValueError, match=r"BatchNorm\(4\) expects"):
        BatchNorm(4)(torch.zeros(2, 4, 3))
    with pytest.raises(ValueError, match=r"got \(2, 3, 5, 5\)"):
        BatchNorm(4)(torch.zeros(2, 3, 5, 5))


def _sync_worker(rank: int, world: int, port: int, x: torch.Tensor, upstream: torch.Tensor, out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        bn = BatchNorm(5, sync=True)
        with torch.no_grad():
            bn.weight.copy_(torch.linspace(0.5, 2.0, 5))
        part = x.chunk(world)[rank].clone().requires_grad_()
        y = bn(part)
        (y * upstream.chunk(world)[rank]).sum().backward()
        torch.save({"y": y.detach(), "grad": part.grad, "weight_grad": bn.weight.grad,
                    "running_mean": bn.running_mean, "running_var": bn.running_var}, f"{out}/{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.parametrize("shape", [(12, 5), (6, 5, 4, 3)])
def test_sync_over_processes_equals_batchnorm_of_the_global_batch(tmp_path, shape):
    import socket

    import torch.multiprocessing as mp

    torch.manual_seed(0)
    x, upstream = torch.randn(*shape) * 2 + 1, torch.randn(*shape)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_sync_worker, args=(2, port, x, upstream, str(tmp_path)), nprocs=2)
    ranks = [torch.load(tmp_path / f"{r}.pt", weights_only=True) for r in range(2)]

    reference = (nn.BatchNorm1d if len(shape) == 2 else nn.BatchNorm2d)(5)
    with torch.no_grad():
        reference.weight.copy_(torch.linspace(0.5, 2.0, 5))
    xr = x.clone().requires_grad_()
    y = reference(xr)
    (y * upstream).sum().backward()
    torch.testing.assert_close(torch.cat([r["y"] for r in ranks]), y.detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(torch.cat([r["grad"] for r in ranks]), xr.grad, rtol=1e-5, atol=1e-5)
    # each process holds its share of the parameter gradient; DDP's all-reduce adds them up
    torch.testing.assert_close(ranks[0]["weight_grad"] + ranks[1]["weight_grad"], reference.weight.grad,
                               rtol=1e-5, atol=1e-5)
    for r in ranks:
        torch.testing.assert_close(r["running_mean"], reference.running_mean, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(r["running_var"], reference.running_var, rtol=1e-5, atol=1e-5)


def test_bf16_inputs_keep_float32_statistics_like_torch():
    """Under bf16 autocast a convolution hands BatchNorm bf16 activations (found on a GPU; CPU autocast does the
    same): statistics in float32 as nn.BatchNorm2d, output in the input's dtype."""
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 5, 3)
    ours, theirs = BatchNorm(5), nn.BatchNorm2d(5)
    x = torch.randn(8, 3, 10, 10)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h = conv(x)
        assert h.dtype == torch.bfloat16
        y, y2 = ours(h), theirs(h)
    assert y.dtype == y2.dtype
    torch.testing.assert_close(y.float(), y2.float(), rtol=0, atol=2e-2)
    assert ours.running_mean.dtype == ours.running_var.dtype == torch.float32
    torch.testing.assert_close(ours.running_mean, theirs.running_mean, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours.running_var, theirs.running_var, rtol=1e-4, atol=1e-4)


def test_sync_batchnorm_plugin_turns_on_the_from_scratch_batchnorm_and_converts_torch_batchnorm():
    from torch import nn

    from zoo.layers.batchnorm import BatchNorm
    from zoo.layers.batchnorm_sync import BatchNormSync

    model = nn.Sequential(nn.Conv2d(1, 4, 3), BatchNorm(4), nn.Conv2d(4, 4, 3), nn.BatchNorm2d(4))
    synced = BatchNormSync().apply(model)
    assert synced[1].sync and isinstance(synced[3], nn.SyncBatchNorm)
    reverted = BatchNormSync().revert(synced)
    assert not reverted[1].sync and not isinstance(reverted[3], nn.SyncBatchNorm)  # Lightning reverts to a plain BatchNorm
