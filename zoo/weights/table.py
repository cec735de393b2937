"""``zoo weights``: the catalogue as a table, and the line ``zoo test`` adds when it evaluates a card's file."""

from __future__ import annotations

from zoo.weights import catalogue


def where(entry: catalogue.Entry) -> str:
    if entry.shipped:
        return "package"
    if entry.cached.exists():
        return f"cache ({entry.cached})"
    return "download" if entry.url else f"zoo reproduce {entry.model} {entry.name}"


def _size(nbytes: int) -> str:
    return f"{nbytes / 1e6:.1f} MB" if nbytes >= 1e5 else f"{nbytes / 1e3:.0f} kB"


def _spread(entry: catalogue.Entry) -> str:
    accs = [s["test_acc"] for s in entry.record.get("seeds", [])]
    if len(accs) < 2:
        return ""
    mean = sum(accs) / len(accs)
    std = (sum((a - mean) ** 2 for a in accs) / (len(accs) - 1)) ** 0.5
    return f"{mean:.3f} ± {std:.3f} ({len(accs)})"


def weights_table() -> str:
    """Every entry: name, model, dataset, test accuracy (and its spread over seeds), size, cost, where the file is."""
    entries = catalogue.entries()
    if not entries:
        return "No weights in the catalogue."
    head = ("model", "--model.weights", "data", "test acc", "over seeds", "params", "size", "file")
    rows = [(e.model, e.name, e.data, f"{e.metrics['test_acc']:.4f}", _spread(e), f"{e.params:,}",
             _size(e.file_bytes), where(e)) for e in entries]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [head, *rows]]
    notes = sorted({f"{e.data}: {e.dataset}" for e in entries if e.data == "ImageFolder"})
    return "\n".join([*lines, "", *notes, "Each card: `zoo weights MODEL NAME`. Use: zoo test --model MODEL "
                      "--model.weights NAME --data DATA --data.root DIR"])


def card(model: str, name: str) -> str:
    """One entry's card, as the catalogue holds it."""
    import json

    entry = catalogue.find(model, name)
    if entry is None:
        raise catalogue.CatalogueError(catalogue.unknown_name(model, name))
    return json.dumps(entry.record, indent=1)


def compare_line(model_name: str, weights: str | None, metrics: dict) -> str | None:
    """After ``zoo test --model.weights NAME``: the accuracy measured now beside the card's."""
    entry = catalogue.find(model_name, weights) if weights else None
    if entry is None or "test/acc" not in metrics or "test_acc" not in entry.metrics:  # (a card being made)
        return None
    card = entry.metrics
    now, samples = float(metrics["test/acc"]), int(metrics.get("test/samples", 0))
    same = "the same" if f"{now:.4f}" == f"{card['test_acc']:.4f}" and samples == card["test_samples"] else "DIFFERENT"
    return (f"{model_name} {weights}: test acc {now:.4f} on {samples:,} images; its card: {card['test_acc']:.4f} on "
            f"{card['test_samples']:,} ({same})")


def readme_table() -> str:
    """The table of the zoo in docs/weights.md, from the catalogue (a test checks that the page holds this text)."""
    from zoo.weights.recipes import BOOK

    lines = ["| model | `--model.weights` | data | settings | test acc | mean ± std over seeds | the book | params | file |",
             "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | --- |"]
    for e in catalogue.entries():
        data = "CIFAR-10 photos (subset)" if e.data == "ImageFolder" else e.dataset
        lines.append(f"| {e.model} | {e.name} | {data} | {e.settings}, {e.epochs} epochs | {e.metrics['test_acc']:.4f} | "
                     f"{_spread(e) or '—'} | {BOOK.get(e.key, '—')} | {e.params:,} | "
                     f"{'package' if e.shipped else 'zoo reproduce'}, {_size(e.file_bytes)} |")
    return "\n".join(lines)
