"""Fine-tuning: torchvision weights from the hub cache, our own checkpoints, heads, channels, freezing, resume."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import threading
import urllib.error
from pathlib import Path

import pytest
import torch
import torchvision

import zoo
from tests.helpers import cache_torchvision_weights, cli, make_mnist_like
from zoo.weights.pretrained import WeightsError, cache_path

TV_FILE = "resnet18-f37072fd.pth"  # torchvision's file name for ResNet18_Weights.IMAGENET1K_V1


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home


@pytest.fixture
def imagenet_resnet18(torch_home, monkeypatch):
    """A torchvision-format resnet18 state dict saved where torch.hub caches IMAGENET1K_V1 (under its own hash)."""
    torch.manual_seed(1)
    state = torchvision.models.resnet18(weights=None).state_dict()
    cache_torchvision_weights(monkeypatch, torch_home, torchvision.models.ResNet18_Weights.IMAGENET1K_V1, state)
    return state


def test_cache_path_is_where_torch_hub_keeps_torchvision_files(torch_home):
    for name in ("IMAGENET1K_V1", "DEFAULT"):
        assert cache_path(torchvision.models.ResNet18_Weights[name]) == torch_home / "hub" / "checkpoints" / TV_FILE


@pytest.fixture
def fake_root(tmp_path):
    make_mnist_like(tmp_path / "data" / "FashionMNIST" / "raw")
    return tmp_path / "data"


def data(root, cls="tests.helpers.fakes.FakeFashionMNIST"):
    return ["--data", cls, "--data.root", str(root), "--data.val_size", "50", "--data.batch_size", "32"]


@pytest.mark.parametrize("name", ["IMAGENET1K_V1", "DEFAULT"])
def test_torchvision_weights_by_name_from_the_cache(imagenet_resnet18, name, caplog):
    model = zoo.ResNet18(num_classes=10, in_channels=1, weights=name)
    # the report: what was loaded, adapted, replaced
    assert "Weights from torchvision ResNet18_Weights.IMAGENET1K_V1" in caplog.text
    assert "tensors loaded" in caplog.text
    assert "adapted: conv1.weight (64, 3, 7, 7) -> (64, 1, 7, 7)" in caplog.text
    assert "replaced (new head): fc.weight (1000, 512) -> (10, 512), fc.bias (1000,) -> (10,)" in caplog.text
    ours = model.net.state_dict()
    for key, theirs in imagenet_resnet18.items():
        if key.startswith("fc."):
            assert ours[key].shape[0] == 10  # a new head for 10 classes
        elif key == "conv1.weight":
            torch.testing.assert_close(ours[key], theirs.sum(dim=1, keepdim=True))  # 3 channels -> 1
        else:
            torch.testing.assert_close(ours[key], theirs, rtol=0, atol=0)


def test_torchvision_weights_load_exactly_into_the_same_shape(imagenet_resnet18):
    model = zoo.ResNet18(num_classes=1000, in_channels=3, weights="DEFAULT")
    for key, value in model.net.state_dict().items():
        assert torch.equal(value, imagenet_resnet18[key]), key


def test_missing_weights_offline_name_the_file_and_url(torch_home, monkeypatch):
    def no_network(url, dst, *args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    with pytest.raises(WeightsError) as err:
        zoo.ResNet18(weights="IMAGENET1K_V1")
    message = str(err.value)
    assert str(torch_home / "hub" / "checkpoints" / TV_FILE) in message
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in message


def test_unknown_weights_name_lists_choices():
    with pytest.raises(WeightsError, match="DEFAULT, IMAGENET1K_V1|IMAGENET1K_V1, DEFAULT"):
        zoo.ResNet18(weights="IMAGENET2K")


def test_one_to_three_channels_keeps_the_response_to_gray_images(tmp_path):
    torch.manual_seed(0)
    gray = zoo.LeNet(in_channels=1)
    path = tmp_path / "lenet.pt"
    torch.save(gray.state_dict(), path)  # a LightningModule state dict: keys start with "net."
    color = zoo.LeNet(in_channels=3, weights=str(path))
    x = torch.rand(4, 1, 28, 28)
    torch.testing.assert_close(color(x.repeat(1, 3, 1, 1)), gray(x), rtol=1e-5, atol=1e-5)


def test_other_architecture_is_refused_with_the_tensors_named(tmp_path):
    path = tmp_path / "lenet.pt"
    torch.save(zoo.LeNet().net.state_dict(), path)
    with pytest.raises(WeightsError, match=r"do not fit this network.*\n.*(weights \(|in the weights)"):
        zoo.LeNetBN(weights=str(path))


def test_pickle_that_is_not_plain_tensors_is_refused(tmp_path):
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": zoo.LeNet().state_dict(), "extra": Path("/etc")}, path)  # an arbitrary object
    with pytest.raises(WeightsError, match="refused: loading it would run arbitrary code"):
        zoo.LeNet(weights=str(path))


def _fit(*args):
    return cli("fit", "--model", "LeNetBN", *args)


def test_checkpoint_fine_tunes_on_data_with_another_class_count(fake_root):
    first = _fit(*data(fake_root), "--trainer.max_steps", "1")
    ckpt = Path(first.trainer.checkpoint_callback.dirpath) / "last.ckpt"
    trained = {k[len("net."):]: v for k, v in torch.load(ckpt, weights_only=True)["state_dict"].items() if k.startswith("net.")}
    second = _fit(*data(fake_root, "tests.helpers.fakes.FiveClassFashionMNIST"), "--model.weights", str(ckpt),
                  "--trainer.max_steps", "0")
    model = second.model
    assert model.num_classes == 5 and model.net[-1].weight.shape == (5, 84)
    head = model.head_prefix
    for key, value in model.net.state_dict().items():
        if not key.startswith(head):
            torch.testing.assert_close(value, trained[key], rtol=0, atol=0)


def test_frozen_backbone_keeps_weights_and_batchnorm_statistics(fake_root):
    run = _fit(*data(fake_root), "--model.freeze_backbone_epochs", "1", "--trainer.max_steps", "0")
    before = {k: v.clone() for k, v in run.model.net.state_dict().items()}
    run = _fit(*data(fake_root), "--model.freeze_backbone_epochs", "1", "--trainer.max_epochs", "1",
               "--seed_everything", "0")
    after = run.model.net.state_dict()
    head = run.model.head_prefix
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    assert changed and all(k.startswith(head) for k in changed), changed  # only the head learned
    assert any("running_mean" in k for k in before)  # there are BatchNorm statistics, and they did not move


def test_freeze_state_and_param_groups_survive_resume(fake_root):
    args = [*data(fake_root), "--model.freeze_backbone_epochs", "2", "--model.head_lr_mult", "10",
            "--optimizer.lr", "0.05"]
    first = _fit(*args, "--trainer.max_epochs", "1")
    ckpt = Path(first.trainer.checkpoint_callback.dirpath) / "last.ckpt"
    at_ckpt = {k: v.clone() for k, v in first.model.net.state_dict().items()}
    # resumed into epoch 1: still frozen
    second = _fit(*args, "--trainer.max_epochs", "2", "--ckpt_path", str(ckpt))
    groups = second.trainer.optimizers[0].param_groups
    assert [g["name"] for g in groups] == ["backbone", "head"]
    assert [g["lr"] for g in groups] == pytest.approx([0.05, 0.5])
    head = second.model.head_prefix
    for key, value in second.model.net.state_dict().items():
        if not key.startswith(head):
            assert torch.equal(value, at_ckpt[key]), key
    # resumed into epoch 2: unfrozen, the backbone learns
    ckpt2 = Path(second.trainer.checkpoint_callback.dirpath) / "last.ckpt"
    third = _fit(*args, "--trainer.max_epochs", "3", "--ckpt_path", str(ckpt2))
    assert not torch.equal(third.model.net[0].weight, at_ckpt["0.weight"])
    assert all(p.requires_grad for p in third.model.parameters())


def test_torchvision_weights_set_the_data_normalisation(imagenet_resnet18, fake_root):
    run = cli("fit", "--model", "ResNet18", "--model.weights", "DEFAULT", *data(fake_root), "--trainer.max_steps", "0")
    dm = run.datamodule
    assert dm.normalize and dm.mean == pytest.approx(((0.485 + 0.456 + 0.406) / 3,))
    assert dm.std == pytest.approx(((0.229 + 0.224 + 0.225) / 3,))


def test_ckpt_path_needs_no_pretrained_weights_file(tmp_path, fake_root):
    torch.manual_seed(0)
    weights = tmp_path / "start.pt"
    torch.save(zoo.LeNetBN().state_dict(), weights)
    run = _fit(*data(fake_root), "--model.weights", str(weights), "--trainer.max_steps", "2")
    ckpt = Path(run.trainer.checkpoint_callback.dirpath) / "last.ckpt"
    weights.unlink()  # e.g. tested on another machine
    test = cli("test", "--ckpt_path", str(ckpt))
    assert test.trainer.callback_metrics["test/samples"].item() == 101


# --- torchvision files are sha256-checked, in the cache and when downloaded ---------------------------------


def test_tampered_file_in_the_hub_cache_is_refused(torch_home):
    path = torch_home / "hub" / "checkpoints" / TV_FILE  # the right name, other content
    path.parent.mkdir(parents=True)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    with pytest.raises(WeightsError) as err:
        zoo.ResNet18(weights="DEFAULT")
    message = str(err.value)
    assert f"{path} is not the file its name promises" in message
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    assert f"sha256 {actual}, expected one starting with f37072fd" in message
    assert "Delete it" in message and "https://download.pytorch.org/models/resnet18-f37072fd.pth" in message


@pytest.fixture
def http_server(tmp_path):
    """A local HTTP server over a folder: (folder, base URL)."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join()


@pytest.mark.parametrize("tampered", [False, True])
def test_download_is_checked_against_the_hash_in_its_name(torch_home, http_server, monkeypatch, tampered):
    folder, base = http_server
    torch.manual_seed(2)
    state = torchvision.models.resnet18(weights=None).state_dict()
    buffer = io.BytesIO()
    torch.save(state, buffer)
    name = f"resnet18-{hashlib.sha256(buffer.getvalue()).hexdigest()[:10]}.pth"
    served = bytearray(buffer.getvalue())
    if tampered:
        served[-100] ^= 0xFF  # one flipped byte somewhere in the tensors' data
    (folder / name).write_bytes(bytes(served))
    weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    monkeypatch.setattr(weights.value, "url", f"{base}/{name}")
    cached = torch_home / "hub" / "checkpoints" / name
    if tampered:
        with pytest.raises(WeightsError, match=rf"download of {base}/{name} is not the file its name promises: "
                                               rf"invalid hash value.*nothing was saved.*{cached}"):
            zoo.ResNet18(num_classes=1000, in_channels=3, weights="DEFAULT")
        assert list(cached.parent.iterdir()) == []  # no file, no partial file left in the cache
    else:
        model = zoo.ResNet18(num_classes=1000, in_channels=3, weights="DEFAULT")
        assert cached.read_bytes() == bytes(served)
        for key, value in model.net.state_dict().items():
            assert torch.equal(value, state[key]), key


# --- weights of another architecture: the error names it ---------------------------------------------------


def test_zoo_checkpoint_of_another_model_is_named(fake_root):
    first = cli("fit", "--model", "LeNet", *data(fake_root), "--trainer.max_steps", "1")
    ckpt = Path(first.trainer.checkpoint_callback.dirpath) / "last.ckpt"
    with pytest.raises(WeightsError, match=r"do not fit this network \(LeNetBN\): they are LeNet weights "
                                           r"\(as their checkpoint records\); to use them, choose --model LeNet:\n"):
        zoo.LeNetBN(weights=str(ckpt))


@pytest.mark.parametrize(("saved", "model", "named"), [
    (lambda: zoo.LeNet().net.state_dict(), zoo.LeNetBN, "LeNet weights (by their tensor names); to use them, choose --model LeNet"),
    (lambda: zoo.LeNetBN().state_dict(), zoo.LeNet, "LeNetBN or LeNetBNScratch weights (by their tensor names)"),
    (lambda: torchvision.models.resnet50(weights=None).state_dict(), zoo.ResNet18, "torchvision's resnet50 weights (by their tensor names)"),
    (lambda: {"encoder.weight": torch.zeros(3, 3)}, zoo.LeNet, "neither the zoo nor torchvision's ResNets"),
])
def test_state_dict_of_another_architecture_is_named_by_its_tensor_names(tmp_path, saved, model, named):
    path = tmp_path / "weights.pt"
    torch.save(saved(), path)
    with pytest.raises(WeightsError) as err:
        model(weights=str(path))
    first_line = str(err.value).splitlines()[0]
    assert f"the weights in {path} do not fit this network ({model.__name__}): " in first_line
    assert named in first_line


def test_torchvision_weights_at_another_size_warn_about_224(imagenet_resnet18, fake_root):
    with pytest.warns(UserWarning, match=r"trained on 224 px images; the data runs at 28 px \(--data.resize 224"):
        cli("fit", "--model", "ResNet18", "--model.weights", "DEFAULT", *data(fake_root), "--trainer.max_steps", "0")
