"""``ImageFolder``: the layout, every Pillow format, bad files, the decoded cache, RandomResizedCrop, the CLI.

Every image tree here is written by the test, in the real file formats, with
pixels whose decoded values are known independently of the code under test.
"""

from __future__ import annotations

import csv
import io
import math
import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.pytorch.trainer.states import TrainerFn
from PIL import Image
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

import datamodules.image_cache as image_cache
from datamodules import DatasetError, ImageFolder
from datamodules.augment import (
    RandomResizedCrop,
    center_crop,
    resized_crop,
    resized_crop_uint8,
    sample_resized_crop_boxes,
)
from datamodules.folder import stratified_split
from tests.helpers import QUIET
from zoo.commands.lightning import cli_main
from zoo_common import ConfigError

SIZE = 8  # cached side in these tests


def solid(color, size=(20, 20), mode="RGB") -> Image.Image:
    return Image.new(mode, size, color)


def save(img: Image.Image, path: Path, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **kwargs)
    return path


def write_tree(root: Path) -> dict[str, tuple[int, int, int]]:
    """train/{red,blue}/ in many formats, modes and sizes, plus bad and ignored files; test/ likewise.

    Returns {file name: the RGB colour every pixel of it must decode to} for the good files.
    """
    colors = {"red": (250, 10, 10), "blue": (10, 10, 250)}
    expected = {}
    for split, n in (("train", 1), ("test", 0)):
        for cls, rgb in colors.items():
            folder = root / split / cls
            files = {
                f"png_{n}.png": (solid(rgb, (30, 20)), {}),
                f"jpeg_{n}.jpg": (solid(rgb, (17, 40)), {"quality": 100}),
                f"webp_{n}.webp": (solid(rgb), {"lossless": True}),
                f"bmp_{n}.bmp": (solid(rgb, (9, 9)), {}),
                f"rgba_{n}.png": (solid((*rgb, 128), mode="RGBA"), {}),
                f"palette_{n}.png": (solid(rgb).quantize(4), {}),
                f"upper_{n}.JPEG": (solid(rgb, (64, 48)), {"quality": 100}),
            }
            for name, (img, kwargs) in files.items():
                save(img, folder / name, **kwargs)
                expected[f"{split}/{cls}/{name}"] = rgb
            # a GIF whose first frame has the class colour and whose second frame does not
            frames = [solid(rgb).quantize(2), solid((0, 255, 0)).quantize(2)]
            frames[0].save(folder / f"anim_{n}.gif", save_all=True, append_images=frames[1:])
            expected[f"{split}/{cls}/anim_{n}.gif"] = rgb
            if split == "train":
                (folder / "notes.txt").write_text("not an image, and not named like one: ignored")
                (folder / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
                (folder / "._hidden.jpg").write_bytes(b"resource fork")
    # gray and CMYK in red/
    save(solid(128, mode="L"), root / "train" / "red" / "gray.png")
    expected["train/red/gray.png"] = (128, 128, 128)
    save(solid((0, 255, 255, 5), mode="CMYK"), root / "train" / "red" / "cmyk.jpg", quality=100)
    expected["train/red/cmyk.jpg"] = tuple(Image.new("CMYK", (1, 1), (0, 255, 255, 5)).convert("RGB").getpixel((0, 0)))
    # bad files: a truncated JPEG, text with an image name, an empty file
    jpeg = io.BytesIO()
    solid((250, 10, 10), (64, 64)).save(jpeg, "JPEG")
    (root / "train" / "red" / "truncated.jpg").write_bytes(jpeg.getvalue()[: len(jpeg.getvalue()) // 2])
    (root / "train" / "blue" / "letter.jpg").write_text("Dear user, this is not a JPEG.")
    (root / "train" / "blue" / "empty.png").write_bytes(b"")
    return expected


BAD = {"train/red/truncated.jpg", "train/blue/letter.jpg", "train/blue/empty.png"}


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "photos"
    return root, write_tree(root)


def folder_dm(root: Path, tmp_path: Path, **kwargs) -> ImageFolder:
    options = {"image_size": SIZE, "crop_size": 6, "val_size": 2, "batch_size": 4, "cache_dir": str(tmp_path / "cache")}
    return ImageFolder(str(root), **{**options, **kwargs})


def rows_by_file(dm: ImageFolder, split: str) -> dict[str, np.ndarray]:
    cached = dm._cached(split, build=False)
    return {name: cached.images[i] for i, name in enumerate(cached.files) if cached.labels[i] >= 0}


def test_classes_counts_formats_and_bad_files(tree, tmp_path):
    root, expected = tree
    dm = folder_dm(root, tmp_path)
    assert dm.classes == ("blue", "red") and dm.num_classes == 2 and dm.input_shape == (3, 6, 6)
    dm.prepare_data()
    with pytest.warns(UserWarning) as warned:
        dm.setup("fit")
    messages = "\n".join(str(w.message) for w in warned)
    for name in BAD:
        assert str(root / name) in messages
    assert "3 of" in messages and "left out" in messages
    assert set(dm.left_out) == {str(root / name) for name in BAD}
    assert "empty file" in dm.left_out[str(root / "train/blue/empty.png")]
    n_train = sum(1 for k in expected if k.startswith("train/"))
    assert len(dm.train_set[1]) + len(dm.val_set[1]) == n_train
    assert len(dm.val_set[1]) == 2 and sorted(dm.val_set[1].tolist()) == [0, 1]  # stratified: one of each
    # every good file decodes to its colour: format, mode, palette, alpha, GIF's first frame, CMYK, gray
    decoded = rows_by_file(dm, "train")
    assert set(decoded) == {k for k in expected if k.startswith("train/")}
    for name, array in decoded.items():
        assert array.shape == (3, SIZE, SIZE)
        want = np.array(expected[name], dtype=np.int16).reshape(3, 1, 1)
        assert np.abs(array.astype(np.int16) - want).max() <= 3, name
    dm.setup("test")
    assert len(dm.test_set[1]) == sum(1 for k in expected if k.startswith("test/"))


def test_labels_follow_the_folders(tree, tmp_path):
    root, _ = tree
    dm = folder_dm(root, tmp_path, val_size=0)
    with pytest.warns(UserWarning):
        dm.setup("fit")
    cached = dm._cached("train", build=False)
    files = [cached.files[i] for i in dm.train_set[0].rows.tolist()]
    assert [dm.classes[k] for k in dm.train_set[1].tolist()] == [Path(f).parent.name for f in files]
    # and a batch holds the rows it names: each red-folder image is red (the gray one aside)
    images = dm.train_set[0][torch.arange(len(files))]
    for f, image in zip(files, images):
        if "gray" not in f:
            assert (image[0].float().mean() > 128) == (Path(f).parent.name == "red"), f


def test_chosen_classes_in_the_given_order(tree, tmp_path):
    root, _ = tree
    # the reverse of the sorted order: label 0 is red, 1 is blue, and each file gets its own folder's label
    dm = folder_dm(root, tmp_path, classes=["red", "blue"], val_size=0)
    with pytest.warns(UserWarning):
        dm.setup("fit")
    assert dm.classes == ("red", "blue")
    cached = dm._cached("train", build=False)
    files = [cached.files[i] for i in dm.train_set[0].rows.tolist()]
    assert [dm.classes[k] for k in dm.train_set[1].tolist()] == [Path(f).parent.name for f in files]
    images = dm.train_set[0][torch.arange(len(files))]
    for f, label, image in zip(files, dm.train_set[1].tolist(), images):
        if "gray" not in f:  # the pixels agree: red images have label 0
            assert (image[0].float().mean() > 128) == (label == 0), f
    with pytest.raises(ConfigError, match="green"):
        folder_dm(root, tmp_path, classes=["red", "green"])


def test_one_class_is_refused(tree, tmp_path):
    root, _ = tree
    with pytest.raises(ConfigError, match=r"two classes or more.*only \['red'\]"):
        folder_dm(root, tmp_path, classes=["red"])
    (root / "train" / "blue").rename(tmp_path / "blue")
    with pytest.raises(ConfigError, match=r"the folder holds only \['red'\]"):
        folder_dm(root, tmp_path)


def test_strict_mode_fails_on_a_bad_file(tree, tmp_path):
    root, _ = tree
    dm = folder_dm(root, tmp_path, strict=True)
    with pytest.raises(DatasetError, match="strict"):
        dm.setup("fit")


def test_exif_orientation_is_applied(tmp_path):
    # what the camera shows: a 40 x 20 (w x h) picture, left half red, right half blue
    shown = Image.new("RGB", (40, 20), (10, 10, 250))
    shown.paste((250, 10, 10), (0, 0, 20, 20))
    # a phone stores it rotated and says so: orientation 6 means "rotate 90 degrees clockwise to show"
    stored = shown.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = save(stored, tmp_path / "phone.jpg", quality=100, exif=exif)
    array = image_cache.decode(path, 20, 3)  # the shorter side (20) kept, the centre 20 x 20 cropped
    left, right = array[:, :, :8], array[:, :, 12:]
    assert left[0].mean() > 200 and left[2].mean() < 50  # red on the left, as shown
    assert right[2].mean() > 200 and right[0].mean() < 50


def test_16_bit_png_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 257], [65535, 12850]], dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode.startswith("I")
    decoded = image_cache.decode(path, 2, 1)  # already 2 x 2: no resampling
    want = np.round(values.astype(np.float64) * 255 / 65535).astype(np.uint8)
    assert np.array_equal(decoded[0], want)


def test_resize_and_center_crop_match_torchvision(tmp_path):
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (30, 50, 3), dtype=np.uint8))  # 50 wide, 30 high
    path = save(img, tmp_path / "noise.png")
    ours = torch.from_numpy(image_cache.decode(path, 12, 3).copy()).float()
    ref = v2.Compose([v2.Resize(12), v2.CenterCrop(12), v2.PILToTensor()])(img).float()
    # torchvision rounds the crop to whole pixels after resizing; we crop the exact centre: close, not equal
    assert (ours - ref).abs().mean() < 12 and ours.shape == ref.shape
    square = save(Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)), tmp_path / "square.png")
    ref = v2.Compose([v2.Resize(12), v2.PILToTensor()])(Image.open(square))
    assert torch.equal(torch.from_numpy(image_cache.decode(square, 12, 3).copy()), ref)


def test_decompression_bomb_is_left_out(tmp_path, monkeypatch):
    path = save(solid((1, 2, 3), (100, 100)), tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5000)
    with pytest.raises(image_cache.BadImage, match="decompression bomb"):
        image_cache.decode(path, 8, 3)


@pytest.mark.parametrize("case", ["empty class", "no train", "val differs", "no classes"])
def test_layout_errors_name_the_folder(tmp_path, case):
    root = tmp_path / "data"
    save(solid((1, 2, 3)), root / "train" / "a" / "x.png")
    if case == "empty class":
        (root / "train" / "b").mkdir()
        with pytest.raises(DatasetError, match=f"{root / 'train' / 'b'}: the class folder holds no image files"):
            folder_dm(root, tmp_path).setup("fit")
    elif case == "no train":
        with pytest.raises(DatasetError, match=f"{tmp_path}: no train/ folder in it; expected .*/train/<class>"):
            folder_dm(tmp_path, tmp_path)
    elif case == "val differs":
        save(solid((1, 2, 3)), root / "train" / "c" / "x.png")
        save(solid((1, 2, 3)), root / "val" / "c" / "x.png")
        save(solid((1, 2, 3)), root / "val" / "z" / "x.png")
        with pytest.raises(DatasetError, match=r"val has other class folders than train/ \(missing \['a'\], extra \['z'\]\)"):
            folder_dm(root, tmp_path).setup("fit")
    else:
        save(solid((1, 2, 3)), tmp_path / "flat" / "train" / "x.png")
        with pytest.raises(DatasetError, match=f"{tmp_path / 'flat' / 'train'} holds no class folders"):
            folder_dm(tmp_path / "flat", tmp_path)


def test_no_test_split_is_one_clear_error(tmp_path):
    root = tmp_path / "data"
    for i in range(3):
        save(solid((i, 2, 3)), root / "train" / "a" / f"{i}.png")
        save(solid((3, 2, i)), root / "train" / "b" / f"{i}.png")
    with pytest.raises(DatasetError, match="test not found: `zoo test` needs a test split"):
        folder_dm(root, tmp_path, val_size=2).setup(TrainerFn.TESTING)  # as Lightning passes it


def test_cache_is_reused_and_rebuilt_when_a_file_changes(tree, tmp_path, monkeypatch):
    root, _ = tree
    folder_dm(root, tmp_path).prepare_data()
    calls = []
    real_decode = image_cache.decode
    monkeypatch.setattr(image_cache, "decode", lambda *a: calls.append(a[0]) or real_decode(*a))
    dm = folder_dm(root, tmp_path)
    dm.prepare_data()
    with pytest.warns(UserWarning):
        dm.setup("fit")
    assert calls == []  # a second run decodes nothing
    # a changed file (new content, new mtime): rebuilt, and the new pixels are what the cache holds
    # (an uncompressed BMP of the same size: only the modification time tells)
    changed = root / "train" / "red" / "bmp_1.bmp"
    size = changed.stat().st_size
    save(solid((0, 250, 0), (9, 9)), changed)
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 10**9))
    assert changed.stat().st_size == size
    dm = folder_dm(root, tmp_path)
    dm.prepare_data()
    assert changed in calls
    assert rows_by_file(dm, "train")["train/red/bmp_1.bmp"][1].min() > 240  # green now
    # a removed file: rebuilt too, without it
    calls.clear()
    (root / "train" / "red" / "png_1.png").unlink()
    dm = folder_dm(root, tmp_path)
    dm.prepare_data()
    assert calls and "train/red/png_1.png" not in rows_by_file(dm, "train")


def test_an_interrupted_build_is_not_loaded(tree, tmp_path):
    root, _ = tree
    dm = folder_dm(root, tmp_path)
    dm.prepare_data()
    cached = dm._cached("train", build=False)
    index = cached.path.with_suffix(".json")
    # killed before the index was renamed into place: no index, so no cache
    index.rename(index.with_suffix(".json.bak"))
    assert dm._cached("train", build=False) is None
    # an array cut short under a complete index (a copy gone wrong) is not loaded either
    index.with_suffix(".json.bak").rename(index)
    data = cached.path.read_bytes()
    cached.path.write_bytes(data[: len(data) // 2])
    assert dm._cached("train", build=False) is None
    dm.prepare_data()  # and is built again
    assert dm._cached("train", build=False) is not None


def test_read_only_data_folder_and_default_cache_outside_it(tree, tmp_path, monkeypatch):
    root, _ = tree
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    for path in [root, *root.rglob("*")]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    try:
        dm = ImageFolder(str(root), image_size=SIZE, crop_size=6, val_size=2)
        dm.prepare_data()
        with pytest.warns(UserWarning):
            dm.setup("fit")
    finally:
        for path in [root, *root.rglob("*")]:
            path.chmod(path.stat().st_mode | stat.S_IWUSR)
    assert dm.cache_folder.is_relative_to(tmp_path / "xdg" / "d2l-zoo")
    assert list(dm.cache_folder.glob("*.npy"))
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before  # nothing written into the data


def test_stratified_split_counts_and_fractions():
    labels = torch.tensor([0] * 60 + [1] * 30 + [2] * 10)
    train, val = stratified_split(labels, 0.2, seed=3)
    assert torch.bincount(labels[val]).tolist() == [12, 6, 2]
    assert len(set(train.tolist()) | set(val.tolist())) == 100 and not set(train.tolist()) & set(val.tolist())
    train2, val2 = stratified_split(labels, 0.2, seed=3)
    assert torch.equal(val, val2)
    _, val = stratified_split(labels, 7, seed=0)
    assert len(val) == 7 and torch.bincount(labels[val], minlength=3).tolist() == [4, 2, 1]
    with pytest.raises(ConfigError):
        stratified_split(labels, 100, seed=0)


# --- RandomResizedCrop ---------------------------------------------------------------------------------


def test_resized_crop_equals_torchvision_for_the_same_boxes():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(12, 3, 37, 45, generator=g)
    boxes = sample_resized_crop_boxes(12, 37, 45, generator=g)
    assert len({tuple(b) for b in boxes.tolist()}) > 1  # a box per sample
    for size in (16, 64):  # shrinking (antialiased) and enlarging
        ref = torch.stack([TF.resized_crop(x[i], *b, [size, size], antialias=True) for i, b in enumerate(boxes.tolist())])
        torch.testing.assert_close(resized_crop(x, boxes, size), ref, atol=1e-5, rtol=0)
    xu = (x * 255).to(torch.uint8)
    ref = torch.stack([TF.resized_crop(xu[i], *b, [16, 16], antialias=True) for i, b in enumerate(boxes.tolist())])
    assert torch.equal(resized_crop_uint8(xu, boxes, 16), ref)


def test_crop_boxes_follow_torchvisions_distribution():
    n, h, w, scale, ratio = 4000, 40, 60, (0.08, 1.0), (3 / 4, 4 / 3)
    boxes = sample_resized_crop_boxes(n, h, w, scale, ratio, generator=torch.Generator().manual_seed(1))
    top, left, bh, bw = boxes.double().unbind(1)
    assert (top >= 0).all() and (left >= 0).all() and (top + bh <= h).all() and (left + bw <= w).all()
    area = bh * bw / (h * w)
    # sides are rounded to pixels: the area fraction and ratio stay within the ranges up to that rounding
    assert (area >= scale[0] * 0.8).all() and (area <= scale[1] + 1e-9).all()
    log_r = torch.log(bw / bh)
    assert (log_r >= math.log(ratio[0]) - 0.2).all() and (log_r <= math.log(ratio[1]) + 0.2).all()
    torch.manual_seed(1)
    tv = v2.RandomResizedCrop(8, scale, ratio)
    ref = torch.tensor([[p["top"], p["left"], p["height"], p["width"]]
                        for p in (tv.make_params([torch.zeros(3, h, w)]) for _ in range(n))]).double()
    ref_area = ref[:, 2] * ref[:, 3] / (h * w)
    for ours, theirs in ((area, ref_area), (log_r, torch.log(ref[:, 3] / ref[:, 2])), (top / h, ref[:, 0] / h)):
        assert abs(ours.mean() - theirs.mean()) < 0.02 and abs(ours.std() - theirs.std()) < 0.02


def test_random_resized_crop_checks_its_ranges():
    with pytest.raises(ConfigError, match="scale"):
        RandomResizedCrop(8, scale=(0.5, 0.1))
    with pytest.raises(ConfigError, match="ratio"):
        RandomResizedCrop(8, ratio=(0.0, 1.0))


def test_transform_crops_in_training_and_centres_in_evaluation(tree, tmp_path):
    root, _ = tree
    dm = folder_dm(root, tmp_path, normalize=False, hflip=0.0, random_resized_crop=True)
    x = torch.randint(0, 256, (5, 3, SIZE, SIZE), dtype=torch.uint8)
    torch.testing.assert_close(dm.transform(x, train=False), TF.center_crop(x, [6, 6]).float() / 255)
    torch.testing.assert_close(center_crop(x, 6), TF.center_crop(x, [6, 6]))
    torch.manual_seed(0)
    boxes = sample_resized_crop_boxes(5, SIZE, SIZE, dm.rrc.scale, dm.rrc.ratio)
    torch.manual_seed(0)
    out = dm.transform(x, train=True)
    ref = torch.stack([TF.resized_crop(x[i], *b, [6, 6], antialias=True) for i, b in enumerate(boxes.tolist())])
    torch.testing.assert_close(out, ref.float() / 255)


# --- the command line ----------------------------------------------------------------------------------




def test_fit_test_and_predict_name_the_classes_from_the_checkpoint(tree, tmp_path, monkeypatch):
    root, _ = tree
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    cli_main(["fit", "--model", "SoftmaxRegression", "--data", "ImageFolder", "--data.root", str(root),
              "--data.image_size", "8", "--data.crop_size", "8", "--data.val_size", "2",
              "--trainer.max_epochs", "1", *QUIET])
    folder = tmp_path / "lightning_logs" / "SoftmaxRegression-ImageFolder" / "version_0"
    ckpt = folder / "checkpoints" / "best.ckpt"
    saved = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert saved["datamodule_hyper_parameters"]["classes"] == ["blue", "red"]  # resolved from the folders
    # a class folder added since: the checkpoint's classes still hold
    for split in ("train", "test"):
        save(solid((0, 255, 0)), root / split / "green" / "g.png")
    run = cli_main(["test", "--ckpt_path", str(ckpt), *QUIET])
    assert run.datamodule.classes == ("blue", "red") and run.trainer.callback_metrics["test/samples"] == 16
    # predictions name the classes, with no --data
    shots = tmp_path / "shots"
    save(solid((250, 10, 10)), shots / "a.png")
    save(solid((10, 10, 250), (30, 50)), shots / "b.jpg")
    cli_main(["predict", "--ckpt_path", str(ckpt), "--data.predict_path", str(shots), *QUIET])
    out = folder / "predictions.csv"  # in the run whose checkpoint predicted
    with open(out) as f:
        rows = list(csv.DictReader(f))
    assert {Path(r["file"]).name for r in rows} == {"a.png", "b.jpg"}
    assert {r["class"] for r in rows} <= {"red", "blue"}
    # a checkpoint of other classes than the data's is refused, naming them
    with pytest.raises(DatasetError, match=r"trained on the classes \['blue', 'red'\].*--data.classes \[blue,red\]"):
        cli_main(["test", "--ckpt_path", str(ckpt), "--data", "ImageFolder", "--data.root", str(root),
                  "--data.image_size", "8", "--data.crop_size", "8", "--data.classes", "[red,blue]", *QUIET])


@pytest.mark.slow  # starts two training processes
def test_ddp_two_processes_count_every_evaluation_sample_once(tree, tmp_path):
    from tests.commands.test_ddp import DDP_CPU, metrics, zoo

    root, expected = tree
    save(solid((250, 10, 10)), root / "test" / "red" / "odd.png")  # 17 test images: not a multiple of 2
    data = ["--model", "SoftmaxRegression", "--data", "ImageFolder", "--data.root", str(root), "--data.image_size", "8",
            "--data.crop_size", "8", "--data.val_size", "5", "--data.batch_size", "2",
            "--data.cache_dir", str(tmp_path / "cache")]
    out = zoo("fit", "-c", DDP_CPU, *data, "--trainer.max_epochs", "1", cwd=tmp_path)
    assert out.stderr.count("ImageFolder: decoding") == 2  # train/ and test/, once (prepare_data, one rank)
    ckpt = str(tmp_path / "lightning_logs" / "SoftmaxRegression-ImageFolder" / "version_0" / "checkpoints" / "last.ckpt")
    two = metrics(zoo("validate", "-c", DDP_CPU, "--ckpt_path", ckpt, cwd=tmp_path), tmp_path)
    one = metrics(zoo("validate", "--ckpt_path", ckpt, "--trainer.devices", "1", cwd=tmp_path), tmp_path)
    assert (two["world_size"], one["world_size"]) == (2, 1)
    assert two["metrics"]["val/samples"] == one["metrics"]["val/samples"] == 5
    assert two["metrics"]["val/acc"] == pytest.approx(one["metrics"]["val/acc"], abs=1e-6)
    assert metrics(zoo("test", "-c", DDP_CPU, "--ckpt_path", ckpt, cwd=tmp_path), tmp_path)["metrics"]["test/samples"] == 17


def test_the_stratified_split_follows_the_seed():
    """Broken variant: the split ignores ``--data.seed`` (every seed holds out the same images)."""
    labels = torch.arange(200) % 4
    split = {seed: stratified_split(labels, 0.25, seed) for seed in (0, 0, 1)}
    same, other = stratified_split(labels, 0.25, 0), split[1]
    assert torch.equal(split[0][1], same[1])  # a seed is a split
    assert not torch.equal(split[0][1].sort().values, other[1].sort().values)  # another seed, another split
    for train, val in (split[0], other):  # stratified either way: 50 of each class, 12 or 13 held out
        assert sorted(torch.bincount(labels[val]).tolist()) == [12, 12, 13, 13] or torch.bincount(labels[val]).tolist() == [13, 13, 12, 12]
        assert len(set(train.tolist()) | set(val.tolist())) == 200
