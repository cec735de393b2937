"""The course's manual review: counted categories and each one's ceiling, from a filled-in review.csv."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

from zoo.commands.analyze.review import tally
from zoo_common import ConfigError


def write_review(path, categories, header=("number", "index", "category")):
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(header)
        out.writerows([[n, 100 + n, c] for n, c in enumerate(categories, start=1)])
    return path


def test_shares_and_ceilings(tmp_path):
    # 40 reviewed: 10 blurry, 8 wrong label, 4 both (counted in each), 18 other; 2 left empty
    cats = ["blurry"] * 10 + ["Wrong label"] * 8 + ["blurry; wrong label"] * 4 + ["dog vs cat"] * 18 + ["", " "]
    path = write_review(tmp_path / "review.csv", cats)
    (tmp_path / "diagnosis.json").write_text(json.dumps({"split_error": 12.0}))
    text = tally(path)
    assert text.splitlines()[0] == "40 reviewed error(s) (2 row(s) with no category left out); the set's error is 12.0%"
    lines = {line.split()[0]: line for line in text.splitlines()[1:] if line.startswith("  ")}
    # blurry: 14 of 40 = 35 %: 12.0 * 0.65 = 7.8
    assert "blurry" in lines and "  14   35.0%" in lines["blurry"] and "from 12.0% to at most 7.8%" in lines["blurry"]
    assert "  12   30.0%" in lines["wrong"] and "to at most 8.4%" in lines["wrong"]
    assert "  18   45.0%" in lines["dog"] and "to at most 6.6%" in lines["dog"]
    assert tally(path, error=20.0).count("from 20.0%") == 3


def test_without_a_diagnosis_the_shares_alone(tmp_path):
    text = tally(write_review(tmp_path / "review.csv", ["a", "b", "a"]))
    assert "66.7%" in text and "at most" not in text and "--error PERCENT" in text


@pytest.mark.parametrize("header, cats, message", [
    (("number", "index", "label"), ["a"], "no `category` column"),
    (("number", "index", "category"), ["", ""], "every `category` cell is empty"),
])
def test_bad_review_files(tmp_path, header, cats, message):
    with pytest.raises(ConfigError, match=message):
        tally(write_review(tmp_path / "review.csv", cats, header))


def test_the_command_needs_no_torch_and_exits_2_on_a_bad_file(tmp_path):
    good = write_review(tmp_path / "review.csv", ["blurry", "blurry", "dark"])
    probe = ("import sys, runpy; sys.argv = ['zoo', 'analyze', '--tally', sys.argv[1]]\n"
             "from zoo.cli import main\nmain()\nprint('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", probe, str(good)], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip().endswith("False") and "66.7%" in done.stdout
    bad = write_review(tmp_path / "bad.csv", ["x"], ("number", "index", "label"))
    done = subprocess.run([sys.executable, "-m", "zoo.cli", "analyze", "--tally", str(bad)], capture_output=True, text=True)
    assert done.returncode == 2 and "no `category` column" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    # reporting the failure loads nothing heavy either
    probe = ("import sys\nfrom zoo.cli import main\ntry:\n    main(['analyze', '--tally', sys.argv[1]])\n"
             "except SystemExit as e:\n    print(e.code, 'torch' in sys.modules, 'lightning' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", probe, str(bad)], capture_output=True, text=True)
    assert done.stdout.split() == ["2", "False", "False"], done.stdout + done.stderr
