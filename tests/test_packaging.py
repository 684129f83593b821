"""The package metadata: torch as a range, heavy optional packages out of the core install, [test] complete."""

from __future__ import annotations

import re
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from conftest import REPO

# Packages reranking does not need, each behind the extra that names its feature.
MOVED = {"matplotlib": "plots", "usearch": "hnsw", "onnxruntime": "onnx"}
# Extras whose packages are installed and exercised by the test suite (the others are not used by the code).
TESTED_EXTRAS = {"plots", "hnsw", "serve", "onnx"}


@pytest.fixture(scope="module")
def project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def _requirements(entries: list[str]) -> dict[str, Requirement]:
    reqs = [Requirement(entry) for entry in entries]
    return {re.sub(r"[-_.]+", "-", r.name).lower(): r for r in reqs}


def _extras_of_self(entries: list[str]) -> set[str]:
    return {extra for r in map(Requirement, entries) if r.name == "crossrank" for extra in r.extras}


def test_torch_is_a_range_that_the_readme_pin_satisfies(project):
    torch = _requirements(project["dependencies"])["torch"]
    operators = {spec.operator for spec in torch.specifier}
    assert not operators & {"==", "===", "~="}, f"torch must be a range, not a pin: {torch}"
    assert ">=" in operators and "<" in operators, f"torch needs a floor and a ceiling: {torch}"
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    pins = re.findall(r"torch==([0-9][0-9.]*)", readme)
    assert pins, "the README's install command pins the CPU torch wheel"
    for pin in pins:
        assert torch.specifier.contains(Version(pin)), f"README pins torch {pin}, outside {torch.specifier}"
        assert torch.specifier.contains(Version(pin + "+cpu")), "the CPU wheel's local version must match too"


def test_heavy_optional_packages_are_not_core_dependencies(project):
    core = _requirements(project["dependencies"])
    extras = project["optional-dependencies"]
    for package, extra in MOVED.items():
        assert package not in core, f"{package} belongs in the [{extra}] extra, not the core install"
        assert package in _requirements(extras[extra]), f"[{extra}] must provide {package}"


def test_test_extra_installs_every_tested_extra(project):
    extras = project["optional-dependencies"]
    assert TESTED_EXTRAS | set(MOVED.values()) <= set(extras)
    assert _extras_of_self(extras["test"]) >= TESTED_EXTRAS | set(MOVED.values())
    assert _extras_of_self(extras["all"]) >= set(extras) - {"all", "test"}


@pytest.fixture
def without_extras(monkeypatch):
    """Imports of the moved packages fail, as in a core-only install."""
    import builtins
    import sys

    real_import = builtins.__import__

    def no_optional(name, *args, **kwargs):
        if name.split(".")[0] in MOVED:
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    for module in list(sys.modules):
        if module.split(".")[0] in MOVED:
            monkeypatch.delitem(sys.modules, module)
    monkeypatch.setattr(builtins, "__import__", no_optional)


def test_missing_extras_raise_errors_that_name_them(without_extras, tmp_path):
    """Without the optional package, the feature fails with crossrank's error naming the extra to install."""
    from crossrank.errors import BackendUnavailableError
    from crossrank.evaluation import report
    from crossrank.retrieval import dense
    from crossrank.retrieval.bm25 import BM25Settings
    from crossrank.retrieval.index import CollectionIndex, IndexSettings

    with pytest.raises(BackendUnavailableError, match=r"crossrank\[hnsw\]"):
        dense.require_hnsw()
    with pytest.raises(BackendUnavailableError, match=r"crossrank\[hnsw\]"):  # before any work, not after embedding
        CollectionIndex.create(tmp_path / "idx", IndexSettings(BM25Settings(), "default", hnsw=True))
    assert not (tmp_path / "idx").exists()
    with pytest.raises(BackendUnavailableError, match=r"crossrank\[plots\]"):
        report.require_plotting()
    assert not report.plotting_available()


def _tiny_result():
    from crossrank.evaluation.experiment import ExperimentResult, KResult
    from crossrank.evaluation.significance import PairedTest

    latency = {"p50": 1.0, "p95": 2.0, "p99": 3.0, "mean": 1.5}
    rows = [KResult(k, {"ndcg@10": 0.5 + k / 100}, 0.8, latency, 100.0, {"ndcg@10": PairedTest(0.1, 0.2, 0.3, 4)})
            for k in (10, 20)]
    return ExperimentResult("toy", "first", "tiny", 4, 1, {"ndcg@10": 0.4}, rows, {}, 0.5)


def test_experiment_report_without_matplotlib_keeps_json_and_markdown(without_extras, tmp_path, caplog):
    from crossrank.errors import BackendUnavailableError
    from crossrank.evaluation.report import write_report

    paths = write_report(_tiny_result(), tmp_path)
    assert set(paths) == {"json", "markdown"} and sorted(p.name for p in tmp_path.iterdir()) == [
        "report.md", "results.json"]
    text = paths["markdown"].read_text()
    assert "crossrank[plots]" in text and "![" not in text
    assert "crossrank[plots]" in caplog.text
    with pytest.raises(BackendUnavailableError, match=r"crossrank\[plots\]"):
        write_report(_tiny_result(), tmp_path / "strict", plots=True)


def test_experiment_report_draws_plots_with_the_extra(tmp_path):
    pytest.importorskip("matplotlib", reason="plots need the [plots] extra")
    from crossrank.evaluation.report import write_report

    paths = write_report(_tiny_result(), tmp_path)
    assert all(paths[key].stat().st_size > 0 for key in ("quality_vs_k", "latency_vs_k", "quality_vs_latency"))
    assert "![quality vs K](quality_vs_k.png)" in paths["markdown"].read_text()
