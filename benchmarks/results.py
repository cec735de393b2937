"""Each benchmark owns one section of benchmarks/RESULTS.md and rewrites only that, when asked to
(``--write-results``); otherwise it prints the section, and the tracked file stays as it is."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

WRITE_FLAG = "--write-results"

RESULTS = Path(__file__).with_name("RESULTS.md")
HEADER = "# Benchmark results\n\nEach section is written by the script it names, with the command that made it.\n"


def add_write_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(WRITE_FLAG, action="store_true",
                        help="write the results into benchmarks/RESULTS.md (and docs/), not only print them")


def writing(write: bool | None = None) -> bool:
    """Whether results go into the tracked files: ``write``, or else whether the command line asks for it."""
    return WRITE_FLAG in sys.argv[1:] if write is None else write


def write_section(name: str, body: str, write: bool | None = None, path: Path = RESULTS) -> None:
    print(body)
    if not writing(write):
        print(f"(printed only: pass {WRITE_FLAG} to write it into {path.name})")
        return
    text = path.read_text() if path.exists() else HEADER
    block = f"<!-- {name}:start -->\n{body.rstrip()}\n<!-- {name}:end -->"
    pattern = re.compile(rf"<!-- {re.escape(name)}:start -->.*?<!-- {re.escape(name)}:end -->", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)


def machine() -> str:
    import os
    import platform

    import torch

    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()}, torch {torch.__version__}"
    return f"CPU ({os.cpu_count()} cores, {platform.processor() or platform.machine()}), torch {torch.__version__}"
