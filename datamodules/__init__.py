"""The zoo's DataModules; importing this package registers them."""

from datamodules.cifar import CIFAR10
from datamodules.files import DatasetError
from datamodules.folder import ImageFolder
from datamodules.mnist import MNIST, FashionMNIST
from datamodules.synthetic import SyntheticPoints

__all__ = ["CIFAR10", "MNIST", "DatasetError", "FashionMNIST", "ImageFolder", "SyntheticPoints"]
