"""The documentation: the README's links resolve (files and the headings they point at), and the site builds
with MkDocs in strict mode (no broken link or anchor in docs/)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.helpers import REPO

LINK = re.compile(r"\]\(([^)\s]+)\)")


def _anchors(markdown: str) -> set[str]:
    """The anchors MkDocs and GitHub give the headings: lowercase, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#{1,6} (.+)$", re.sub(r"```.*?```", "", markdown, flags=re.S), flags=re.M)
    return {re.sub(r"[\s]+", "-", re.sub(r"[^\w\s-]", "", h.strip().lower())) for h in headings}


def test_every_link_of_the_readme_resolves():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 300
    links = [link for link in LINK.findall(readme) if not link.startswith(("http://", "https://", "mailto:"))]
    assert links
    for link in links:
        path, _, anchor = link.partition("#")
        target = REPO / path if path else REPO / "README.md"
        assert target.exists(), f"README.md links to {link}: no such file"
        if anchor:
            assert anchor in _anchors(target.read_text()), f"README.md links to {link}: no such heading"


def test_the_anchor_check_sees_a_heading_that_is_not_there():
    assert "training-on-your-own-images" in _anchors("## Training on your own images\n")
    assert "predicting" not in _anchors("## Training on your own images\n```\n# predicting\n```\n")


def test_the_site_builds_strictly(tmp_path):
    pytest.importorskip("material", reason="needs the docs extra: pip install -e '.[docs]' (the dev extra has it)")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(REPO / "mkdocs.yml"),
                           "-d", str(tmp_path / "site")], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (tmp_path / "site" / "adding" / "index.html").is_file()
