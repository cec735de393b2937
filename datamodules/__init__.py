"""The zoo's DataModules; importing this package registers them."""

from datamodules.files import DatasetError
from datamodules.mnist import FashionMNIST
from datamodules.synthetic import SyntheticPoints

__all__ = ["DatasetError", "FashionMNIST", "SyntheticPoints"]
