"""The README's examples are true for the shipped default: its CLI example prints what the README shows."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from test_cli import run_cli

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_rerank_example_prints_what_it_shows():
    text = README.read_text(encoding="utf-8")
    match = re.search(r"echo '(\{.*?\})' \\\n  \| crossrank rerank\n# (\{.*?\})\n", text)
    assert match, "the README's `echo ... | crossrank rerank` example and its output comment"
    request, shown = match.group(1), json.loads(match.group(2))
    proc = run_cli(["rerank"], request + "\n")
    assert proc.returncode == 0, proc.stderr.decode()
    got = json.loads(proc.stdout)
    assert [(r["index"], r["id"]) for r in got["results"]] == [(r["index"], r["id"]) for r in shown["results"]]
    for mine, theirs in zip(got["results"], shown["results"]):
        assert mine["score"] == pytest.approx(theirs["score"], abs=2e-3)
        assert mine["probability"] == pytest.approx(theirs["probability"], abs=2e-3)
