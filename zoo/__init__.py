"""The d2l model zoo: the classic models of *Dive into Deep Learning* as LightningModules."""

from zoo.base import ClassificationModule, RegressionModule, ZooModule
from zoo.linear import LinearRegression, SoftmaxRegression
from zoo.registry import get_model, list_models, register_model

__all__ = [
    "ClassificationModule",
    "LinearRegression",
    "RegressionModule",
    "SoftmaxRegression",
    "ZooModule",
    "get_model",
    "list_models",
    "register_model",
]
