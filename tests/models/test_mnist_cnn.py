"""The classic MNIST CNN, continuing a finished run, and the optimizer presets."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn

import zoo
from tests.helpers import CONFIGS, SHARED_DATASETS, cli, fit_then_test

OPTIM_PRESETS = sorted((CONFIGS / "optim").glob("*.yaml"))
MODEL_CONFIGS = sorted(CONFIGS.glob("*.yaml"))


class ClassicNet(nn.Module):
    """pytorch/examples mnist/main.py's Net, as the example writes it."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 10, kernel_size=5)
        self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
        self.conv2_drop = nn.Dropout2d()
        self.fc1 = nn.Linear(320, 50)
        self.fc2 = nn.Linear(50, 10)

    def forward(self, x):
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv2_drop(self.conv2(x)), 2))
        x = x.view(-1, 320)
        x = F.relu(self.fc1(x))
        x = F.dropout(x, training=self.training)
        return F.log_softmax(self.fc2(x), dim=1)


def test_mnist_cnn_is_the_classic_example():
    ours, theirs = zoo.MnistCNN(), ClassicNet()
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters()) == 21_840
    with torch.no_grad():
        for mine, ref in zip(ours.net.parameters(), theirs.parameters()):
            mine.copy_(ref)
    ours.eval(), theirs.eval()
    x = torch.rand(4, 1, 28, 28)
    torch.testing.assert_close(ours(x).log_softmax(-1), theirs(x))


def test_continuing_a_finished_run_carries_steps_and_optimizer_state(fake_fashion):
    root, _ = fake_fashion
    args = ["fit", "--model", "LeNet", "--data", "FashionMNIST", "--data.root", str(root), "--data.val_size", "50",
            "--data.batch_size", "32", "--optimizer.lr", "0.3", "--optimizer.momentum", "0.5"]
    one = cli(*args, "--trainer.max_epochs", "1")
    first = Path(one.trainer.checkpoint_callback.dirpath) / "last.ckpt"
    steps_per_epoch = one.trainer.global_step
    continued = cli(*args, "--trainer.max_epochs", "2", "--ckpt_path", str(first))
    straight = cli(*args, "--trainer.max_epochs", "2")
    assert continued.trainer.global_step == straight.trainer.global_step == 2 * steps_per_epoch
    assert continued.trainer.current_epoch == 2
    # same weights and the same momentum buffers as a run that never stopped: the state was carried on
    for key, value in straight.model.state_dict().items():
        torch.testing.assert_close(continued.model.state_dict()[key], value, rtol=0, atol=0)
    a = continued.trainer.optimizers[0].state_dict()["state"]
    b = straight.trainer.optimizers[0].state_dict()["state"]
    assert a.keys() == b.keys() and len(a) > 0
    for k in a:
        torch.testing.assert_close(a[k]["momentum_buffer"], b[k]["momentum_buffer"], rtol=0, atol=0)


# one config of each kind: its own optimizer only (LeNet), its own scheduler too and an image folder (LeNetBN on
# photos), a regression (linear regression): what a preset is composed with
EACH_KIND = [CONFIGS / f"{name}.yaml" for name in ("lenet_fashion_mnist", "lenet_bn_cifar10_photos", "linreg_synthetic")]


@pytest.mark.parametrize("preset", OPTIM_PRESETS, ids=lambda p: p.stem)
def test_every_optimizer_preset_runs_one_batch_with_each_kind_of_config(preset, fake_fashion, tmp_path, monkeypatch):
    preset_runs_with(preset, EACH_KIND, fake_fashion, tmp_path, monkeypatch)


@pytest.mark.slow  # 6 presets x 21 configs
@pytest.mark.parametrize("preset", OPTIM_PRESETS, ids=lambda p: p.stem)
def test_every_optimizer_preset_runs_one_batch_with_every_model_config(preset, fake_fashion, tmp_path, monkeypatch):
    preset_runs_with(preset, [c for c in MODEL_CONFIGS if c not in EACH_KIND], fake_fashion, tmp_path, monkeypatch)


def preset_runs_with(preset, configs, fake_fashion, tmp_path, monkeypatch) -> None:
    from tests.commands.test_lightning import prepare_config_data

    root, _ = fake_fashion
    spec = yaml.safe_load(preset.read_text())
    assert configs
    for config in configs:
        extra = prepare_config_data(config, root, tmp_path / config.stem, monkeypatch)
        run = cli("fit", "-c", str(config), "-c", str(preset), "--trainer.fast_dev_run", "1", "--data.batch_size", "4",
                  *extra)
        assert run.trainer.global_step == 1, config.stem
        optimizer = run.trainer.optimizers[0]
        if "optimizer" in spec:
            assert type(optimizer).__name__ == spec["optimizer"]["class_path"].rsplit(".", 1)[-1]
            group = optimizer.param_groups[0]  # initial_lr: the rate before a scheduler (the preset's or the config's) moved it
            assert group.get("initial_lr", group["lr"]) == spec["optimizer"]["init_args"]["lr"]
        if "lr_scheduler" in spec:
            (scheduler,) = run.trainer.lr_scheduler_configs
            assert type(scheduler.scheduler).__name__ == spec["lr_scheduler"]["class_path"].rsplit(".", 1)[-1]


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_DATASETS / "MNIST").exists(), reason="needs the real MNIST copy")
def test_mnist_cnn_reaches_096_on_real_mnist():
    acc = fit_then_test(CONFIGS / "mnist_cnn_mnist.yaml", SHARED_DATASETS)
    # the config's 3 epochs gave 0.9699, 0.9678, 0.9698, 0.9664 over seeds 0-3 (the example's 0.98 takes more
    # epochs); the card's 0.9702 is seed 0 in the usual layout. 0.96 is about four spreads below their mean.
    assert acc >= 0.96, acc
