"""Writing and running the two formats: ONNX (through torch's dynamo exporter, run by ONNX Runtime) and pt2
(``torch.export``'s program, run by ``torch.export.load``). Each file carries its contract in its metadata."""

from __future__ import annotations

import json
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import numpy as np
import torch

from zoo_common import ConfigError

FORMATS = {"onnx": ".onnx", "pt2": ".pt2"}
CONTRACT_KEY = "zoo_contract"


def _dynamic_batch(spec: dict) -> dict:
    return {spec["input"]["name"]: {0: torch.export.Dim("batch", min=1)}}  # any N, as the contract says


@contextmanager
def tracing(module: torch.nn.Module):
    """The DataModule's cached mean and std made again inside the trace and after it: the exporter traces with
    fake tensors, and a cache filled then would hold them (the next call fails, or reads the wrong values)."""
    cache = getattr(getattr(module, "datamodule", None), "normalization_tensors", None)
    if cache is not None:
        cache.clear()
    try:
        yield
    finally:
        if cache is not None:
            cache.clear()


def write_onnx(module: torch.nn.Module, example: torch.Tensor, spec: dict, out: IO[bytes]) -> None:
    import onnx

    outputs = [o["name"] for o in spec["outputs"]]
    with warnings.catch_warnings(), torch.no_grad(), tracing(module):
        warnings.simplefilter("ignore")  # the exporter's notes on its own internals
        program = torch.onnx.export(module, (example,), dynamo=True, input_names=[spec["input"]["name"]],
                                    output_names=outputs, dynamic_shapes=_dynamic_batch(spec), verbose=False)
    model = program.model_proto
    entry = model.metadata_props.add()
    entry.key, entry.value = CONTRACT_KEY, json.dumps(spec)
    onnx.checker.check_model(model)
    out.write(model.SerializeToString())


def write_pt2(module: torch.nn.Module, example: torch.Tensor, spec: dict, out: IO[bytes]) -> None:
    with torch.no_grad(), tracing(module):
        program = torch.export.export(module, (example,), dynamic_shapes=_dynamic_batch(spec))
    torch.export.save(program, out, extra_files={f"{CONTRACT_KEY}.json": json.dumps(spec)})


WRITERS = {"onnx": write_onnx, "pt2": write_pt2}


class Runner:
    """An exported file, loaded: ``runner(batch)`` -> the first output (logits, or predictions) as a tensor,
    ``runner.outputs(batch)`` -> every output. Input: the contract's tensor (uint8 images or float features)."""

    def __init__(self, path: Path, fmt: str, threads: int | None = None, spec: dict | None = None) -> None:
        self.path, self.format, self.spec = Path(path), fmt, spec
        if fmt == "onnx":
            import onnxruntime as ort

            options = ort.SessionOptions()
            if threads:
                options.intra_op_num_threads = threads
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            self.input_name = self.session.get_inputs()[0].name
        else:
            # an open file: a path not ending in .pt2 (the check runs on the temporary name) gets a warning
            with open(path, "rb") as f:
                self.program = torch.export.load(f).module()

    def outputs(self, batch: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.spec is not None:
            check_input(batch, self.spec)
        if self.format == "onnx":
            out = self.session.run(None, {self.input_name: np.ascontiguousarray(batch.numpy())})
            return tuple(torch.from_numpy(o) for o in out)
        with torch.no_grad():
            out = self.program(batch)
        return out if isinstance(out, tuple) else (out,)

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        return self.outputs(batch)[0]


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


def check_input(batch: torch.Tensor, spec: dict) -> None:
    """The contract's dtype and shape (any batch size), or a ValueError that says both."""
    want = spec["input"]
    dims = tuple(want["shape"][1:])
    if str(batch.dtype).removeprefix("torch.") != want["dtype"] or batch.dim() != len(dims) + 1 or \
            tuple(batch.shape[1:]) != dims or len(batch) == 0:
        raise ValueError(f"the exported {spec.get('model')} takes {want['dtype']} batches of N x "
                         f"{' x '.join(map(str, dims))} (N >= 1), not {str(batch.dtype).removeprefix('torch.')} "
                         f"{' x '.join(map(str, batch.shape))}")
