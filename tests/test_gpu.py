"""What only a GPU can show: bf16 training, the augmentation on CUDA, DDP with synced BatchNorm on one GPU.

Skipped without CUDA. The suite hides GPUs by default (tests/conftest.py); run these with
``CUDA_VISIBLE_DEVICES=0 python -m pytest -m gpu``.
"""

from __future__ import annotations

import pytest
import torch

from datamodules.augment import Augmentation
from tests.helpers import cli

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (CUDA_VISIBLE_DEVICES=0)"),
]

FAKE = ["--data", "FashionMNIST", "--data.batch_size", "32", "--data.val_size", "60"]


def _fit(root, *extra: str):
    run = cli("fit", "--model", "LeNetBN", *FAKE, "--data.root", str(root), "--optimizer.lr", "0.5",
              "--trainer.max_epochs", "3", *extra)
    return run, {k: v.item() for k, v in run.trainer.callback_metrics.items()}


def test_bf16_fit_on_gpu_learns_like_the_cpu(fake_fashion):
    root, _ = fake_fashion
    gpu_run, gpu = _fit(root, "--trainer.accelerator", "gpu", "--trainer.devices", "1", "--trainer.precision", "bf16-mixed")
    assert gpu_run.trainer.precision == "bf16-mixed"
    assert gpu_run.trainer.strategy.root_device.type == "cuda"  # (Lightning moves the model back to the CPU after fit)
    _, cpu = _fit(root)
    # the fake data is learnable: both reach high accuracy, and the bf16 loss stays near the fp32 one
    assert gpu["val/acc"] >= 0.85 and cpu["val/acc"] >= 0.85, (gpu, cpu)
    assert abs(gpu["val/loss"] - cpu["val/loss"]) < 0.15, (gpu, cpu)
    assert gpu["val/samples"] == cpu["val/samples"] == 60


@pytest.mark.parametrize("channels", [1, 3])
def test_augmentation_on_cuda_equals_cpu(channels):
    aug = Augmentation(crop_padding=4, hflip=0.5, brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1)
    torch.manual_seed(0)
    x = torch.rand(256, channels, 32, 32)
    params = aug.sample(len(x), "cpu", torch.Generator().manual_seed(1))
    cpu = aug.apply(x, params)
    gpu = Augmentation(**{k: getattr(aug, k) for k in ("crop_padding", "hflip", "brightness", "contrast",
                                                      "saturation", "hue")}).apply(
        x.cuda(), {k: v.cuda() for k, v in params.items()})
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=0, atol=1e-5)


def test_uint8_crop_flip_on_cuda_equals_cpu():
    aug = Augmentation(crop_padding=4, hflip=0.5)
    x = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)
    params = aug.sample(len(x), "cpu", torch.Generator().manual_seed(2))
    cpu = aug.geometric(x, params)
    gpu = aug.geometric(x.cuda(), {k: v.cuda() for k, v in params.items()})
    assert torch.equal(gpu.cpu(), cpu)


def test_one_gpu_ddp_with_sync_batchnorm(fake_fashion):
    root, _ = fake_fashion
    run = cli("fit", "--model", "LeNetBNScratch", *FAKE, "--data.root", str(root), "--optimizer.lr", "0.5",
              "--trainer.max_epochs", "4", "--trainer.accelerator", "gpu", "--trainer.devices", "1",
              "--trainer.strategy", "ddp", "--trainer.sync_batchnorm", "true", "--trainer.precision", "bf16-mixed")
    metrics = {k: v.item() for k, v in run.trainer.callback_metrics.items()}
    assert run.trainer.strategy.__class__.__name__ == "DDPStrategy"
    # (after 2 epochs the running statistics still lag, on the CPU as on the GPU: val/acc 0.1 on both)
    assert metrics["val/samples"] == 60 and metrics["val/acc"] >= 0.8, metrics
    # the checkpoint written on the GPU tests on the CPU with the same result
    test = cli("test", "--ckpt_path", run.trainer.checkpoint_callback.best_model_path, "--data.root", str(root))
    assert test.trainer.callback_metrics["test/samples"].item() == 101


def test_gpu_run_on_cifar_shaped_data_augments_on_the_gpu(tmp_path):
    from datamodules import CIFAR10

    dm = CIFAR10(root=str(tmp_path))
    x = torch.randint(0, 256, (128, 3, 32, 32), dtype=torch.uint8)
    torch.manual_seed(3)
    out = dm.transform(x.cuda(), train=True)
    assert out.device.type == "cuda" and out.dtype == torch.float32 and out.shape == (128, 3, 32, 32)
    # augmented training batches differ from the plain evaluation transform; evaluation is the same on both
    assert not torch.allclose(out.cpu(), dm.transform(x, train=False))
    torch.testing.assert_close(dm.transform(x.cuda(), train=False).cpu(), dm.transform(x, train=False),
                               rtol=0, atol=1e-6)
