"""The d2l model zoo: the classic models of *Dive into Deep Learning* as LightningModules."""

from zoo.base import ClassificationModule, RegressionModule, ZooModule
from zoo.googlenet import GoogLeNet
from zoo.lenet import LeNet, LeNetBN, LeNetBNScratch
from zoo.linear import LinearRegression, SoftmaxRegression
from zoo.mlp import MLP
from zoo.mnist_cnn import MnistCNN
from zoo.nin import NiN
from zoo.registry import get_model, list_models, register_model
from zoo.resnet import ResNet18

__all__ = [
    "MLP",
    "ClassificationModule",
    "GoogLeNet",
    "LeNet",
    "LeNetBN",
    "LeNetBNScratch",
    "LinearRegression",
    "MnistCNN",
    "NiN",
    "RegressionModule",
    "ResNet18",
    "SoftmaxRegression",
    "ZooModule",
    "get_model",
    "list_models",
    "register_model",
]
