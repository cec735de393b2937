"""What an exported file is, without PyTorch: its formats, its contract's key, the file beside it, the check of
an input against the contract, and an ONNX file run by ONNX Runtime on NumPy arrays (what `zoo serve` needs
to answer from an ONNX file: its processes then load neither torch nor the zoo's models)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from zoo_common import ConfigError

FORMATS = {"onnx": ".onnx", "pt2": ".pt2"}
CONTRACT_KEY = "zoo_contract"


def sidecar_of(path: Path) -> Path:
    """``FILE.json``: the contract, the sha256 and the check's figures, beside the exported file."""
    return path.with_name(path.name + ".json")


def require_extra(command: str, *modules: str) -> None:
    """The serve extra's modules, or the one line that says how to install them."""
    import importlib

    try:
        for module in modules:
            importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"{command} needs the serve extra: pip install -e '.[serve]'") from None


def format_of(path: Path) -> str:
    for fmt, ext in FORMATS.items():
        if path.suffix == ext:
            return fmt
    raise ConfigError(f"{path}: not an exported model (.onnx or .pt2 made by `zoo export`)")


def check_input(batch, spec: dict) -> None:
    """The contract's dtype and shape (any batch size), or a ValueError that says both; ``batch`` a tensor or a
    NumPy array."""
    want = spec["input"]
    dims = tuple(want["shape"][1:])
    dtype = str(batch.dtype).removeprefix("torch.")
    shape = tuple(batch.shape)
    if dtype != want["dtype"] or len(shape) != len(dims) + 1 or shape[1:] != dims or shape[0] == 0:
        raise ValueError(f"the exported {spec.get('model')} takes {want['dtype']} batches of N x "
                         f"{' x '.join(map(str, dims))} (N >= 1), not {dtype} {' x '.join(map(str, shape))}")


class OnnxSession:
    """An ONNX file in ONNX Runtime: ``session.outputs(array)`` -> every output, as NumPy arrays."""

    def __init__(self, path: Path, threads: int | None = None, spec: dict | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.spec = spec
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def outputs(self, batch: np.ndarray) -> list[np.ndarray]:
        if self.spec is not None:
            check_input(batch, self.spec)
        return self.session.run(None, {self.input_name: np.ascontiguousarray(batch)})
