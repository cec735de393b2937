"""What the server runs: an exported file (ONNX Runtime or torch.export.load) or the eager model, each behind
one call from a uint8 batch (NumPy) to probabilities (NumPy), with the contract that says how uploads are decoded.

An ONNX file needs no torch: neither this module nor its ONNX path imports it, so none of the server's processes
loads it (benchmarks/serve_footprint.py)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from zoo.commands.export.files import CONTRACT_KEY, OnnxSession, format_of, sidecar_of
from zoo_common import ConfigError


def contract_of(path: Path, unchecked: bool = False) -> dict:
    """The contract an exported file carries in its metadata, checked against ``FILE.json`` (its sha256: a file
    changed since ``zoo export`` wrote it is refused). Without ``FILE.json`` nothing proves the file is the one
    that passed the parity check: refused, unless ``unchecked`` (said on the server's log)."""
    fmt = format_of(path)
    if not path.is_file():
        raise ConfigError(f"--exported {path}: no such file; make one with `zoo export`")
    try:
        if fmt == "onnx":
            import onnx

            meta = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
            spec = json.loads(meta[CONTRACT_KEY])
        else:
            with zipfile.ZipFile(path) as z:
                name = next(n for n in z.namelist() if n.endswith(f"extra/{CONTRACT_KEY}.json"))
                spec = json.loads(z.read(name))
    except Exception as e:  # noqa: BLE001 (damaged, or not ours: one line)
        raise ConfigError(f"--exported {path}: not a file written by `zoo export` ({type(e).__name__}: "
                          f"{str(e)[:120]}); export the model again") from None
    sidecar = sidecar_of(path)
    if not sidecar.is_file():
        if not unchecked:
            raise ConfigError(f"--exported {path}: {sidecar.name} is missing, which holds the sha256 that `zoo export` "
                              "recorded after its parity check, so nothing shows the file is the one it checked; keep "
                              f"{sidecar.name} beside it, export again, or pass --unchecked to serve it anyway")
        import sys

        print(f"zoo serve: {path} served unchecked (no {sidecar.name}: its sha256 is not compared)", file=sys.stderr)
    else:
        from zoo.weights.catalogue import sha256_of

        expected = json.loads(sidecar.read_text()).get("sha256")
        actual = sha256_of(path)
        if expected and actual != expected:
            raise ConfigError(f"--exported {path}: sha256 {actual[:16]}... is not the {expected[:16]}... that "
                              f"`zoo export` recorded in {sidecar.name}: the file was changed or damaged; export "
                              "it again")
    if spec.get("kind") != "classification":
        raise ConfigError(f"--exported {path}: a {spec.get('model')} regression model; zoo serve answers image "
                          "classifiers")
    return spec


def load(source, spec: dict, threads: int | None = None):
    """The model behind ``source``: an exported file's path, or the eager model (an ``nn.Module``)."""
    if not isinstance(source, Path):
        return Eager(source, threads)
    return OnnxModel(source, spec, threads) if format_of(source) == "onnx" else Pt2Model(source, spec, threads)


class OnnxModel:
    def __init__(self, path: Path, spec: dict, threads: int | None = None) -> None:
        self.session = OnnxSession(path, threads, spec)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return self.session.outputs(images)[1]  # (logits, probabilities)


class Pt2Model:
    def __init__(self, path: Path, spec: dict, threads: int | None = None) -> None:
        import torch

        from zoo.commands.export.formats import Runner

        if threads:
            torch.set_num_threads(threads)
        self.runner = Runner(path, "pt2", threads, spec)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        import torch

        return self.runner.outputs(torch.from_numpy(images))[1].float().numpy()


class Eager:
    def __init__(self, wrapped, threads: int | None = None) -> None:
        import torch

        self.wrapped = wrapped.eval()
        if threads:
            torch.set_num_threads(threads)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self.wrapped(torch.from_numpy(images))[1].float().numpy()
