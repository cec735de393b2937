"""``zoo export``: a checkpoint (or catalogue weights) as one ONNX or pt2 file and its contract, proven to answer
as the eager model on real test images before it is put in place."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

from zoo.commands.export import formats, graph, parity
from zoo.commands.help import asks_for_help, own_options
from zoo.commands.messages import cannot_write, permission_message
from zoo.training.runs import run_folder
from zoo.weights.catalogue import sha256_of
from zoo_common import ConfigError, atomic_write_text, write_temporary

USAGE = """usage: zoo export [--format onnx|pt2] [--output FILE] [--tolerance T] [--check_images N] MODEL OPTIONS

MODEL OPTIONS choose the weights as `zoo predict` does:
  --ckpt_path best|last|FILE                      a checkpoint of `zoo fit` (its model and data come with it)
  --model NAME --model.weights NAME --data NAME   the zoo's own trained weights (`zoo weights` lists them)
and the images the check runs on: --data.root DIR (the test set), or --data.predict_path FILE|DIR.

  --format onnx|pt2   ONNX (run by ONNX Runtime) or torch.export's program (torch.export.load); default onnx
  --output FILE       default: export/<checkpoint>.<format> in the checkpoint's run folder, or
                      exports/<Model>.<WEIGHTS>.<format> for catalogue weights; FILE.json holds the contract
  --tolerance T       the largest |logit difference| accepted against the eager model (default 1e-3)
  --check_images N    how many test images the check runs, drawn across the whole test set (default 1000; 0: all)
"""


def parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(prog="zoo export", add_help=False, allow_abbrev=False)
    parser.add_argument("--format", default="onnx")
    parser.add_argument("--output", default=None)
    parser.add_argument("--tolerance", type=float, default=parity.TOLERANCE)
    parser.add_argument("--check_images", type=int, default=1000)
    ours, rest = own_options(parser, argv)
    if ours.format not in formats.FORMATS:
        raise ConfigError(f"--format {ours.format}: choose onnx or pt2")
    if not ours.tolerance > 0:
        raise ConfigError(f"--tolerance {ours.tolerance}: give a positive number, e.g. 1e-3")
    if ours.check_images < 0:
        raise ConfigError(f"--check_images {ours.check_images}: give a count >= 1, or 0 for the whole test set")
    return ours, rest


def main(argv: list[str]) -> None:
    if asks_for_help(argv, USAGE):
        return
    ours, rest = parse(argv)
    formats.require_extra("zoo export", "onnxscript", "onnxruntime")  # onnxscript: torch's ONNX exporter
    from zoo.commands.lightning import with_model

    with_model(rest, lambda model, data, ckpt, weights: export(model, data, ckpt, weights, ours))


def default_output(ckpt: str | None, model: str, weights: str | None, fmt: str) -> Path:
    ext = formats.FORMATS[fmt]
    if ckpt:
        run = run_folder(ckpt)
        folder = (run if run else Path(ckpt).resolve().parent) / "export"
        return folder / f"{Path(ckpt).stem}{ext}"
    return Path("exports") / f"{model}.{weights}{ext}"


def check_images(datamodule, limit: int, classifier: bool) -> tuple[torch.Tensor, torch.Tensor | None, str]:
    """(inputs, labels or None, what they are): the files of --data.predict_path, else the test set."""
    if getattr(datamodule, "predict_path", None):
        datamodule.setup("predict")
        images = torch.cat([batch[0] for batch in datamodule.predict_dataloader()])
        return images, None, f"images of {datamodule.predict_path}"
    if getattr(datamodule, "test_set", None) is None:  # its files checked (or fetched), with the zoo's message
        datamodule.prepare_data()
    datamodule.setup("test" if classifier else None)
    if classifier:
        inputs, labels = datamodule.test_set
        what = f"{type(datamodule).__name__} test images"
    else:
        inputs, labels = datamodule.val_set
        what = f"{type(datamodule).__name__} validation points"
    if limit and limit < len(labels):
        # a seeded sample across the whole set: an image folder's test set is ordered by class, so its first
        # images would be a few classes only (and their accuracy not the model's)
        chosen = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))[:limit].sort().values
        what = f"{what} (a seeded sample across all {len(labels):,})"
        inputs, labels = inputs[chosen], labels[chosen]
    return inputs, labels, what


def export(module, datamodule, ckpt: str | None, weights: str | None, options: argparse.Namespace) -> Path:
    """Write, check, then put in place: the file and FILE.json, or nothing and a ParityError."""
    fmt = options.format
    model_name = type(module).__name__
    if not ckpt and not weights:
        raise ConfigError("zoo export needs trained weights: --ckpt_path best (a run of `zoo fit`), or "
                          "--model.weights NAME (`zoo weights` lists the zoo's)")
    out = Path(options.output) if options.output else default_output(ckpt, model_name, weights, fmt)
    if out.suffix != formats.FORMATS[fmt]:
        raise ConfigError(f"--output {out}: a {fmt} file ends in {formats.FORMATS[fmt]}")
    module.eval()
    wrapped = graph.exportable(module, datamodule)
    spec = graph.contract(module, datamodule)
    spec["source"] = {"ckpt_path": str(Path(ckpt).resolve())} if ckpt else {"weights": f"{model_name}.{weights}"}
    classifier = graph.is_classifier(module)
    inputs, labels, what = check_images(datamodule, options.check_images, classifier)
    print(f"Exporting {model_name} to {fmt} ...", file=sys.stderr, flush=True)
    example = graph.example_input(spec)
    try:
        tmp = write_temporary(out, lambda f: formats.WRITERS[fmt](wrapped, example, spec, f), elsewhere="--output FILE")
    except OSError as e:
        if not cannot_write(e):
            raise
        raise ConfigError(permission_message(e, hint="write the file elsewhere with --output FILE")) from None
    try:
        report = parity.compare(wrapped, formats.Runner(tmp, fmt, spec=spec), inputs, labels, what, options.tolerance,
                                classifier)
        parity.check(report, fmt)
        sidecar = dict(spec, format=fmt, file=out.name, sha256=sha256_of(tmp), parity=report.as_dict(),
                       torch=torch.__version__)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    atomic_write_text(formats.sidecar_of(out), json.dumps(sidecar, indent=2) + "\n")
    print(report.line(fmt))
    print(f"Exported to {out} ({out.stat().st_size / 2**20:.1f} MB); its contract and check: {formats.sidecar_of(out)}")
    return out
