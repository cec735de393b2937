"""Making the catalogue: each recipe's run exported to a weights file, its card measured from that file.

    python -m zoo.weights.build --runs RUNS --root ../shared/datasets [--train] [MODEL.NAME ...]

``RUNS/<Model>.<NAME>/seed<N>/`` holds ``zoo fit``'s run of that recipe with seed N (``--train`` makes the
missing seed-0 runs). Seed 0 is the shipped file; other seeds only add their test accuracy to the card's
spread. The test metrics are measured by ``zoo test --model.weights NAME``, through the catalogue, as a
user's command reads them. Files up to 10 MB go into the package; larger ones into torch.hub's cache
(publish them at a URL and set it in the entry's ``url``).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
from pathlib import Path

import torch

from zoo.weights import catalogue
from zoo.weights.card import (
    curve_csv,
    data_contract,
    hardware,
    input_shape,
    measure_test,
    network,
    size_and_cost,
    versions,
    weights_bytes,
)
from zoo.weights.recipes import DATASETS, RECIPES, Recipe
from zoo.weights.train import REPO, data_root, fit_command, run_folder, train
from zoo_common import atomic_write, atomic_write_text

SHIP_LIMIT = 10 * 2**20
CURVES = catalogue.HERE / "curves"


def file_name(recipe: Recipe, sha: str) -> str:
    return f"{recipe.model.lower()}-{recipe.name.lower()}-{sha[:8]}.safetensors"


def write_catalogue(records: dict[str, dict]) -> None:
    order = [r.key for r in RECIPES]
    ordered = sorted(records.values(), key=lambda r: order.index(f"{r['model']}.{r['name']}"))
    text = json.dumps({"weights": ordered}, indent=1) + "\n"
    atomic_write_text(catalogue.CATALOGUE, text)
    catalogue.entries.cache_clear()


def read_catalogue() -> dict[str, dict]:
    if not catalogue.CATALOGUE.exists():
        return {}
    return {f"{r['model']}.{r['name']}": r for r in json.loads(catalogue.CATALOGUE.read_text())["weights"]}


def place_file(recipe: Recipe, blob: bytes, sha: str) -> tuple[str, bool]:
    """Put the file where the catalogue will look for it; (its name, whether it ships in the package)."""
    name, shipped = file_name(recipe, sha), len(blob) <= SHIP_LIMIT
    folder = catalogue.PACKAGED if shipped else catalogue.hub_dir()
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob(file_name(recipe, "*")):  # an earlier build of this entry
        if old.name != name:
            old.unlink()
    atomic_write(folder / name, lambda f: f.write(blob))
    return name, shipped


def build_entry(recipe: Recipe, runs: Path, root: str, records: dict[str, dict]) -> dict:
    out = runs / recipe.key / "seed0"
    if not (out / "train.json").exists():
        train(recipe, root, out)
    run = run_folder(out)
    checkpoint = torch.load(run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)
    blob = weights_bytes(checkpoint, recipe.model, recipe.name)
    sha = hashlib.sha256(blob).hexdigest()
    name, shipped = place_file(recipe, blob, sha)
    data, contract, classes = data_contract(checkpoint)
    shape = input_shape(data, contract)
    params, flops = size_and_cost(network(checkpoint), shape)
    curve, best_val, best_epoch = curve_csv(run)
    CURVES.mkdir(exist_ok=True)
    atomic_write_text(CURVES / f"{recipe.key}.csv", curve)
    trained = json.loads((out / "train.json").read_text())
    record = {
        "model": recipe.model, "name": recipe.name, "data": data, "dataset": DATASETS[data]["title"],
        "classes": classes, "input": {"channels": shape[0], "size": shape[1], "dtype": "uint8 images"},
        "data_args": contract, "configs": list(recipe.configs),
        "command": "zoo " + " ".join(fit_command(recipe, "DATA_ROOT")), "seed": recipe.seed, "settings": recipe.note,
        "epochs": curve.count("\n") - 1,
        "file": name, "file_bytes": len(blob), "sha256": sha, "shipped": shipped, "url": None,
        "params": params, "flops": flops, "curve": f"curves/{recipe.key}.csv",
        "train_seconds": trained["seconds"], "hardware": hardware(), "versions": versions(),
        "trained_on": datetime.date.fromtimestamp((out / "train.json").stat().st_mtime).isoformat(),
        "metrics": {"best_val_acc": best_val, "best_epoch": best_epoch},
    }
    records[recipe.key] = {**records.get(recipe.key, {}), **record}
    write_catalogue(records)  # the draft first: the test below reads the file through the catalogue
    where = data_root(recipe, root)
    measured = measure_test(["--model", recipe.model, "--model.weights", recipe.name, "--data", data,
                             "--data.root", where], REPO)
    record["metrics"].update(test_acc=round(measured["test/acc"], 6), test_loss=round(measured["test/loss"], 6),
                             test_samples=int(measured["test/samples"]))
    seeds = [{"seed": 0, "test_acc": record["metrics"]["test_acc"]}]
    for folder in sorted(p for p in (runs / recipe.key).glob("seed*") if p.is_dir()):
        seed = int(folder.name[len("seed"):])
        if seed == 0 or not (folder / "train.json").exists():
            continue
        best = run_folder(folder) / "checkpoints" / "best.ckpt"
        seeds.append({"seed": seed, "test_acc": round(measure_test(["--ckpt_path", str(best)], REPO)["test/acc"], 6)})
    record["seeds"] = seeds
    records[recipe.key] = record
    write_catalogue(records)
    return record


def write_readme_table() -> None:
    """The documentation's table of the zoo (docs/weights.md), between its markers, from the catalogue."""
    from zoo.weights.table import readme_table

    readme = REPO / "docs" / "weights.md"
    text = readme.read_text()
    start, end = "<!-- weights_table:start -->", "<!-- weights_table:end -->"
    head, rest = text.split(start, 1)
    readme.write_text(f"{head}{start}\n{readme_table()}\n{end}{rest.split(end, 1)[1]}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, required=True, help="the folder of runs, RUNS/<Model>.<NAME>/seed<N>/")
    parser.add_argument("--root", default="../shared/datasets", help="the folder holding the datasets")
    parser.add_argument("keys", nargs="*", help="MODEL.NAME entries to build (default: every recipe with a run)")
    args = parser.parse_args(argv)
    records = read_catalogue()
    chosen = [r for r in RECIPES if (r.key in args.keys if args.keys else (args.runs / r.key / "seed0" / "train.json").exists())]
    for recipe in chosen:
        record = build_entry(recipe, args.runs, args.root, records)
        m = record["metrics"]
        print(f"{recipe.key}: test acc {m['test_acc']:.4f} on {m['test_samples']}, best val acc {m['best_val_acc']:.4f}, "
              f"{record['file_bytes'] / 1e6:.2f} MB, sha256 {record['sha256'][:16]}, seeds {len(record['seeds'])}",
              flush=True)
    write_readme_table()


if __name__ == "__main__":
    main()
