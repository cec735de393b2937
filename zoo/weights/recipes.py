"""What each shipped weights file was trained with: the config files, the seed and the data it needs.

Hand-written: one recipe per catalogue name. The catalogue (``catalogue.json``) is generated from these by
training them (``python -m zoo.weights.build``); ``zoo reproduce NAME`` retrains one the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# where each dataset lies under the data root a user passes (``--data.root DIR`` for the IDX sets; the
# image folder is a sub-folder of it)
DATASETS = {
    "FashionMNIST": {"title": "Fashion-MNIST", "folder": "", "test_samples": 10000},
    "MNIST": {"title": "MNIST", "folder": "", "test_samples": 10000},
    "ImageFolder": {"title": "CIFAR-10 photos (a 20,000-photo JPEG subset of CIFAR-10: 2,000 per class for "
                             "training, 200 per class for testing; not the official set)",
                    "folder": "cifar10-images", "test_samples": 2000},
}

CPU_BUDGET = "at a CPU budget, not the book's settings"


@dataclass(frozen=True)
class Recipe:
    model: str
    name: str
    data: str
    configs: tuple[str, ...]
    seed: int = 0
    note: str = ""  # what the card says about the settings, beyond its config
    args: tuple[str, ...] = field(default=())

    @property
    def key(self) -> str:
        return f"{self.model}.{self.name}"


# These files were trained before the zoo put their networks in the channels-last layout: their recipes keep the
# usual layout, so that `zoo reproduce` retrains the same bits (the layout changes the rounding).
USUAL_LAYOUT = ("--model.channels_last", "false")


def _book(model: str, name: str, data: str, config: str, note: str = "the book's settings",
          args: tuple[str, ...] = ()) -> Recipe:
    return Recipe(model, name, data, (f"configs/{config}.yaml", "configs/trainer/cpu.yaml"), note=note, args=args)


RECIPES = [
    _book("SoftmaxRegression", "FASHIONMNIST_V1", "FashionMNIST", "softmax_fashion_mnist"),
    _book("MLP", "FASHIONMNIST_V1", "FashionMNIST", "mlp_fashion_mnist"),
    _book("LeNet", "FASHIONMNIST_V1", "FashionMNIST", "lenet_fashion_mnist", args=USUAL_LAYOUT),
    _book("LeNetBNScratch", "FASHIONMNIST_V1", "FashionMNIST", "lenet_bn_scratch_fashion_mnist"),
    _book("LeNetBN", "FASHIONMNIST_V1", "FashionMNIST", "lenet_bn_fashion_mnist"),
    _book("MnistCNN", "MNIST_V1", "MNIST", "mnist_cnn_mnist", "PyTorch's MNIST example's settings", args=USUAL_LAYOUT),
    _book("SoftmaxRegression", "MNIST_V1", "MNIST", "softmax_mnist", "the book's Fashion-MNIST settings"),
    _book("MLP", "MNIST_V1", "MNIST", "mlp_mnist", "the book's Fashion-MNIST settings"),
    _book("LeNet", "MNIST_V1", "MNIST", "lenet_mnist", "the book's Fashion-MNIST settings", args=USUAL_LAYOUT),
    _book("LeNetBN", "CIFAR10PHOTOS_V1", "ImageFolder", "lenet_bn_cifar10_photos",
          "the zoo's settings for 32x32 photos (the book trains no LeNet on CIFAR-10)"),
    _book("NiN", "FASHIONMNIST_CPU_V1", "FashionMNIST", "nin_fashion_mnist_cpu",
          f"{CPU_BUDGET}: 67 px (the book: 224), 4 epochs (the book: 10)", args=USUAL_LAYOUT),
    _book("ResNet18", "FASHIONMNIST_CPU_V1", "FashionMNIST", "resnet18_fashion_mnist_cpu",
          f"{CPU_BUDGET}: 28 px (the book: 96), the book's 10 epochs", args=USUAL_LAYOUT),
    _book("ResNet18", "CIFAR10PHOTOS_V1", "ImageFolder", "resnet18_cifar10_photos",
          "the zoo's settings for 32x32 photos, 12 epochs on a CPU", args=USUAL_LAYOUT),
    _book("GoogLeNet", "FASHIONMNIST_CPU_V1", "FashionMNIST", "googlenet_fashion_mnist_cpu",
          f"{CPU_BUDGET}: 28 px (the book: 96), 6 epochs (the book: 10)", args=USUAL_LAYOUT),
]


def seeded(recipe: Recipe, seed: int) -> Recipe:
    """The same recipe with another seed (the spread over seeds in the README's table)."""
    return Recipe(recipe.model, recipe.name, recipe.data, recipe.configs, seed, recipe.note, recipe.args)


def find(model: str, name: str) -> Recipe | None:
    return next((r for r in RECIPES if r.model == model and r.name == name), None)

# What the book prints for the same experiment, where it prints one (d2l-zh 2.0, PyTorch edition, one run on a
# GPU; its test accuracy after the last epoch). The book draws only curves for softmax regression and the MLP.
BOOK = {
    "LeNet.FASHIONMNIST_V1": "0.779 (7.6)",
}
