"""``zoo analyze --tally review.csv``: the categories a person gave the reviewed errors, counted, and each one's
ceiling: fixing every example of a category removes at most its share of the error. Needs no model (no torch)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from zoo_common import ConfigError, read_csv

SEPARATORS = (";", "|")  # an example may fall in several categories: "blurry; wrong label"


def categories_of(cell: str) -> list[str]:
    for sep in SEPARATORS:
        cell = cell.replace(sep, ",")
    return [c.strip().lower() for c in cell.split(",") if c.strip()]


def read_review(path: Path) -> list[dict[str, str]]:
    rows, columns = read_csv(path, "--tally")
    if "category" not in columns:
        raise ConfigError(f"--tally {path}: no `category` column (its columns: {columns}); tally the review.csv "
                          "that zoo analyze wrote, with a category written in each row")
    return rows


def split_error(path: Path) -> float | None:
    """The error of the reviewed set, from the diagnosis.json written beside review.csv."""
    try:
        result = json.loads((path.parent / "diagnosis.json").read_text())
        return float(result["split_error"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def tally(path: str | Path, error: float | None = None) -> str:
    """The report: each category's count, share of the reviewed errors and ceiling on the error."""
    path = Path(path)
    rows = read_review(path)
    if not rows:
        raise ConfigError(f"--tally {path}: no rows to count")
    counts: Counter[str] = Counter()
    empty = 0
    for row in rows:
        found = categories_of(row.get("category") or "")
        empty += not found
        counts.update(set(found))
    reviewed = len(rows) - empty
    if not reviewed:
        raise ConfigError(f"--tally {path}: every `category` cell is empty; write a category in each reviewed row "
                          "(e.g. blurry, wrong label, shirt vs t-shirt), several separated by ';'")
    error = split_error(path) if error is None else error
    lines = [f"{reviewed} reviewed error(s)" + (f" ({empty} row(s) with no category left out)" if empty else "")
             + (f"; the set's error is {error:.1f}%" if error is not None else "")]
    width = max(len(c) for c in counts)
    for category, count in counts.most_common():
        share = count / reviewed
        line = f"  {category:<{width}}  {count:4d}  {share:6.1%}"
        if error is not None:
            line += (f"  fixing every '{category}' example would lower the error from {error:.1f}% to at most "
                     f"{error * (1 - share):.1f}%")
        lines.append(line)
    if error is None:
        lines.append("(no diagnosis.json beside the file: pass --error PERCENT for each category's ceiling)")
    if len(rows) < 100:
        lines.append(f"({len(rows)} rows: the shares are rough; the course reviews about 100)")
    return "\n".join(lines)
