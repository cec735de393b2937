"""The CLI in-process: every config runs a batch, names are checked, data flows into the model."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import pytest
import torch
import torchvision

from tests.helpers import CONFIGS, SHARED_DATASETS, cli, fit_then_test
from zoo.cli import main
from zoo_common import ConfigError, list_datamodules, list_models

CONFIG_FILES = sorted(CONFIGS.glob("*.yaml"))


def prepare_config_data(config, fashion_root, tmp_path, monkeypatch) -> list[str]:
    """Options that point a config at small fake data in the real formats (and a cached torchvision file)."""
    import yaml

    from datamodules import MNIST
    from tests.datamodules.test_cifar import CIFAR10, write_cifar
    from tests.helpers import make_mnist_like

    data = yaml.safe_load(config.read_text())["data"]["class_path"].rsplit(".", 1)[-1]
    args = []
    if data == "FashionMNIST":
        args += ["--data.root", str(fashion_root), "--data.val_size", "50"]
    elif data == "MNIST":
        _, md5 = make_mnist_like(tmp_path / "mnist" / "MNIST" / "raw")
        monkeypatch.setattr(MNIST, "files", dataclasses.replace(MNIST.files, md5=md5, mirrors=()))
        args += ["--data.root", str(tmp_path / "mnist"), "--data.val_size", "50"]
    elif data == "CIFAR10":
        _, md5 = write_cifar(tmp_path / "cifar")
        monkeypatch.setattr(CIFAR10, "files", dataclasses.replace(CIFAR10.files, md5=md5, urls=()))
        args += ["--data.root", str(tmp_path / "cifar"), "--data.val_size", "10"]
    elif data == "ImageFolder":
        from tests.datamodules.test_folder import write_tree

        write_tree(tmp_path / "photos")
        args += ["--data.root", str(tmp_path / "photos"), "--data.val_size", "2",
                 "--data.cache_dir", str(tmp_path / "cache")]
    if "finetune" in config.stem:  # torchvision's weights file, where torch.hub caches it; small batches
        from tests.helpers import cache_torchvision_weights

        monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
        cache_torchvision_weights(monkeypatch, tmp_path / "torch", torchvision.models.ResNet18_Weights.IMAGENET1K_V1,
                                  torchvision.models.resnet18(weights=None).state_dict())
        args += ["--data.batch_size", "4"]
    return args


@pytest.mark.parametrize("config", CONFIG_FILES, ids=lambda p: p.stem)
def test_every_config_runs_one_batch(config, fake_fashion, tmp_path, monkeypatch):
    root, _ = fake_fashion
    args = ["fit", "-c", str(config), "--trainer.fast_dev_run", "1",
            *prepare_config_data(config, root, tmp_path, monkeypatch)]
    run = cli(*args)
    assert run.trainer.global_step == 1
    assert run.trainer.state.finished


def test_unknown_model_lists_valid_names():
    with pytest.raises(ConfigError) as error:
        cli("fit", "--model", "LeNot", "--data", "SyntheticPoints")
    assert "unknown model 'LeNot'" in str(error.value)
    for name in list_models():
        assert name in str(error.value)


def test_unknown_datamodule_in_config_lists_valid_names(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("model: SoftmaxRegression\ndata:\n  class_path: datamodules.FashionMNST\n")
    with pytest.raises(ConfigError) as error:
        cli("fit", "-c", str(config))
    assert "unknown DataModule 'datamodules.FashionMNST'; did you mean FashionMNIST? choose one of: " in str(error.value)
    for name in list_datamodules():
        assert name in str(error.value)


def test_data_determines_model_shape(fake_fashion):
    root, _ = fake_fashion
    run = cli("fit", "--model", "SoftmaxRegression", "--data", "FashionMNIST", "--data.root", str(root), "--data.val_size", "50", "--trainer.fast_dev_run", "1")
    assert run.model.net[1].weight.shape == (10, 784)
    assert run.model.hparams.num_classes == 10 and run.model.hparams.input_size == 28


def test_optimizer_from_command_line():
    run = cli("fit", "--model", "LinearRegression", "--data", "SyntheticPoints", "--optimizer", "Adam", "--optimizer.lr", "0.005", "--trainer.fast_dev_run", "1")
    optimizer = run.trainer.optimizers[0]
    assert isinstance(optimizer, torch.optim.Adam) and optimizer.param_groups[0]["lr"] == 0.005


def test_default_optimizer_is_sgd_and_seed_is_set():
    run = cli("fit", "--model", "LinearRegression", "--data", "SyntheticPoints", "--trainer.fast_dev_run", "1")
    optimizer = run.trainer.optimizers[0]
    assert type(optimizer) is torch.optim.SGD and optimizer.param_groups[0]["lr"] == 0.1
    assert run.config.fit.seed_everything == 0


def test_seeded_runs_start_identical_and_seed_is_overridable():
    def init_weight(*extra):
        run = cli("fit", "--model", "LinearRegression", "--data", "SyntheticPoints", "--trainer.max_steps", "0", *extra)
        return run.model.net.weight.detach().clone()
    torch.testing.assert_close(init_weight(), init_weight())
    assert not torch.equal(init_weight(), init_weight("--seed_everything", "7"))


def test_model_required(capsys):
    argv, sys.argv = sys.argv, ["zoo"]
    try:
        with pytest.raises(SystemExit) as exit_info:
            main(["fit", "--data", "SyntheticPoints"])
    finally:
        sys.argv = argv
    assert exit_info.value.code == 2
    assert "choose a model with --model NAME" in capsys.readouterr().err


def test_every_model_has_a_config_and_every_config_a_known_model():
    import yaml

    used = {yaml.safe_load(p.read_text())["model"]["class_path"].rsplit(".", 1)[-1] for p in CONFIG_FILES}
    assert used == set(list_models())


def test_resize_flows_into_the_model(fake_fashion):
    root, _ = fake_fashion
    run = cli("fit", "--model", "NiN", "--data", "FashionMNIST", "--data.root", str(root), "--data.val_size", "50",
              "--data.resize", "67", "--data.batch_size", "4", "--trainer.fast_dev_run", "1")
    assert run.model.hparams.input_size == 67
    batch = next(iter(run.datamodule.val_dataloader()))
    x, _ = run.datamodule.on_after_batch_transfer(batch, 0)
    assert x.shape == (4, 1, 67, 67)


def _resolved(*args: str) -> dict:
    from zoo.commands.lightning import cli_main

    argv, sys.argv = sys.argv, ["zoo"]
    try:
        run = cli_main(list(args), run=False)
    finally:
        sys.argv = argv
    return run.parser.dump(run.config, format="json")


def test_options_before_their_class_mean_the_same_as_after(fake_fashion):
    root, _ = fake_fashion
    data = ["--data.root", str(root), "--data.val_size", "50", "--data.batch_size", "16"]
    model = ["--model.head_lr_mult", "2.0"]
    after = _resolved("--model", "LeNetBN", *model, "--data", "FashionMNIST", *data, "--trainer.max_steps", "0")
    before = _resolved(*model, "--model", "LeNetBN", *data, "--data", "FashionMNIST", "--trainer.max_steps", "0")
    mixed = _resolved("--data.root", str(root), "--model", "LeNetBN", "--data=FashionMNIST", "--trainer.max_steps", "0",
                      "--data.val_size", "50", *model, "--data.batch_size", "16")
    assert before == after == mixed
    config = json.loads(after)
    assert config["data"]["class_path"].endswith("FashionMNIST") and config["model"]["class_path"].endswith("LeNetBN")
    assert config["data"]["init_args"]["batch_size"] == 16 and config["data"]["init_args"]["root"] == str(root)
    assert config["model"]["init_args"]["head_lr_mult"] == 2.0


@pytest.mark.parametrize("words", [[], ["--help"], ["-h"]])
def test_bare_zoo_and_its_help_list_every_command_whole(words, capsys):
    from zoo.cli import main
    from zoo.commands.help import WHAT

    main(words)
    out = capsys.readouterr().out
    for command, text in WHAT.items():
        assert f"  {command:<10}  {text}" in out  # the whole description, not cut mid-sentence
    assert "  list " in out and "zoo --version" in out


def test_version(capsys):
    import lightning

    from zoo.cli import main

    main(["--version"])
    out = capsys.readouterr().out
    assert out.startswith("d2l-zoo ") and f"torch {torch.__version__}" in out and lightning.__version__ in out


def test_help_after_a_chosen_datamodule_shows_its_options(capsys):
    from zoo.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["fit", "--data", "ImageFolder", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "--data.crop_size" in out and "--data.random_resized_crop" in out and "--trainer.max_epochs" not in out


def test_linear_regression_learns_the_true_parameters(caplog):
    run = cli("fit", "-c", str(CONFIGS / "linreg_synthetic.yaml"))
    dm = run.datamodule
    assert run.trainer.current_epoch == 3
    assert (dm.batch_size, run.trainer.optimizers[0].param_groups[0]["lr"]) == (10, 0.03)
    torch.testing.assert_close(run.model.w, torch.tensor(dm.w), atol=0.01, rtol=0)
    assert abs(run.model.b.item() - dm.b) < 0.01
    assert "true    w = [2.0, -3.4], b = 4.2000" in caplog.text and "learned w = " in caplog.text


def test_ckpt_best_comes_back_without_repeating_options(fake_fashion):
    root, _ = fake_fashion
    fit = cli("fit", "-c", str(CONFIGS / "softmax_fashion_mnist.yaml"), "--data.root", str(root),
              "--data.val_size", "50", "--trainer.max_epochs", "3")
    ckpt_dir = Path(fit.trainer.checkpoint_callback.dirpath)
    assert sorted(p.name for p in ckpt_dir.iterdir()) == ["best.ckpt", "last.ckpt"]
    best_val = fit.trainer.checkpoint_callback.best_model_score.item()
    # neither model nor data given: both come from the checkpoint
    run = cli("validate", "--ckpt_path", "best")
    assert type(run.model).__name__ == "SoftmaxRegression" and run.datamodule.root == str(root)
    metrics = run.trainer.callback_metrics
    assert metrics["val/acc"].item() == pytest.approx(best_val)
    # an explicit path works the same
    run = cli("validate", "--ckpt_path", str(ckpt_dir / "best.ckpt"))
    assert run.trainer.callback_metrics["val/acc"].item() == pytest.approx(best_val)


def test_ckpt_best_picks_the_run_of_the_same_model(fake_fashion, capsys):
    root, _ = fake_fashion
    cli("fit", "-c", str(CONFIGS / "softmax_fashion_mnist.yaml"), "--data.root", str(root), "--data.val_size", "50",
        "--trainer.max_epochs", "1")
    cli("fit", "-c", str(CONFIGS / "linreg_synthetic.yaml"), "--trainer.max_epochs", "1")  # a newer run of another model
    run = cli("test", "--model", "SoftmaxRegression", "--data", "FashionMNIST", "--data.root", str(root),
              "--ckpt_path", "best")
    assert Path(run.config.test.ckpt_path) == Path("lightning_logs/SoftmaxRegression-FashionMNIST/version_0/checkpoints/best.ckpt")
    from zoo_common import ConfigError

    with pytest.raises(ConfigError, match="no best.ckpt of SoftmaxRegression of SyntheticPoints"):
        cli("test", "--model", "SoftmaxRegression", "--data", "SyntheticPoints", "--ckpt_path", "best")


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_DATASETS / "FashionMNIST").exists(), reason="needs the real Fashion-MNIST copy")
def test_softmax_regression_on_real_fashion_mnist():
    acc = fit_then_test(CONFIGS / "softmax_fashion_mnist.yaml", SHARED_DATASETS)
    assert acc >= 0.82, acc  # the book's run ends near 0.83


def test_early_stopping_from_the_command_line():
    run = cli("fit", "-c", str(CONFIGS / "linreg_synthetic.yaml"), "--trainer.max_epochs", "50",
              "--trainer.callbacks+=EarlyStopping", "--trainer.callbacks.monitor", "val/loss",
              "--trainer.callbacks.patience", "2")
    assert run.trainer.early_stopping_callback is not None
    assert run.trainer.current_epoch < 50  # stopped once val/loss stalled
