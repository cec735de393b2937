"""The book's networks, one file per family; importing this package registers them."""

from zoo.models.googlenet import GoogLeNet
from zoo.models.lenet import LeNet, LeNetBN, LeNetBNScratch
from zoo.models.linear import LinearRegression, SoftmaxRegression
from zoo.models.mlp import MLP
from zoo.models.mnist_cnn import MnistCNN
from zoo.models.nin import NiN
from zoo.models.resnet import ResNet18

__all__ = ["MLP", "GoogLeNet", "LeNet", "LeNetBN", "LeNetBNScratch", "LinearRegression", "MnistCNN", "NiN",
           "ResNet18", "SoftmaxRegression"]
