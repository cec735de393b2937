"""Writing and running the two formats: ONNX (through torch's dynamo exporter, run by ONNX Runtime) and pt2
(``torch.export``'s program, run by ``torch.export.load``). Each file carries its contract in its metadata."""

from __future__ import annotations

import json
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import torch

from zoo.commands.export.files import (
    CONTRACT_KEY,
    FORMATS,
    OnnxSession,
    check_input,
    format_of,
    require_extra,
    sidecar_of,
)

__all__ = ["CONTRACT_KEY", "FORMATS", "WRITERS", "Runner", "check_input", "format_of", "require_extra", "sidecar_of"]


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
            self.session = OnnxSession(path, threads)
        else:
            # an open file: a path not ending in .pt2 (the check runs on the temporary name) gets a warning
            with open(path, "rb") as f:
                self.program = torch.export.load(f).module()

    def outputs(self, batch: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.spec is not None:
            check_input(batch, self.spec)
        if self.format == "onnx":
            return tuple(torch.from_numpy(o) for o in self.session.outputs(batch.numpy()))
        with torch.no_grad():
            out = self.program(batch)
        return out if isinstance(out, tuple) else (out,)

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        return self.outputs(batch)[0]
