"""Write an experiment's results as JSON, a Markdown report and PNG plots (quality/latency vs K).

The plots need matplotlib, from the ``[plots]`` extra (``[test]`` includes it). Without it the JSON and
Markdown report are still written and a warning names the extra.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from crossrank.errors import BackendUnavailableError
from crossrank.evaluation.experiment import ExperimentResult

logger = logging.getLogger(__name__)

PLOTS_EXTRA_HINT = "pip install 'crossrank[plots]'"
_PLOT_FILES = {"quality_vs_k": "quality_vs_k.png", "latency_vs_k": "latency_vs_k.png",
               "quality_vs_latency": "quality_vs_latency.png"}


def plotting_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def require_plotting() -> None:
    """Raise crossrank's error naming the extra when matplotlib is missing."""
    if not plotting_available():
        raise BackendUnavailableError(f"experiment plots need matplotlib, from the [plots] extra: {PLOTS_EXTRA_HINT}")


def write_report(result: ExperimentResult, output_dir: Path, plots: bool | None = None) -> dict[str, Path]:
    """Write results.json, report.md and (``plots`` True, or None when matplotlib is installed) the PNG plots.

    Returns the paths written; the plot keys are absent when no plots were drawn. ``plots=True`` without
    matplotlib raises BackendUnavailableError before writing anything.
    """
    if plots:
        require_plotting()
    elif plots is None:
        plots = plotting_available()
        if not plots:
            logger.warning("plots skipped: matplotlib is not installed (%s); the JSON and Markdown report are "
                           "complete", PLOTS_EXTRA_HINT)
            note = f"Plots were not drawn: matplotlib is not installed ({PLOTS_EXTRA_HINT})."
            if note not in result.notes:
                result.notes.append(note)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": output_dir / "results.json", "markdown": output_dir / "report.md"}
    if plots:
        paths.update({key: output_dir / name for key, name in _PLOT_FILES.items()})
    paths["json"].write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")
    paths["markdown"].write_text(markdown(result, {k: p.name for k, p in paths.items()}), encoding="utf-8")
    if plots:
        _plots(result, paths)
    return paths


def markdown(result: ExperimentResult, files: dict[str, str] | None = None) -> str:
    metrics = list(result.first_stage_metrics)
    head = "| K | " + " | ".join(metrics) + " | first-stage Recall@K | p50 ms | p95 ms | p99 ms | pairs/s | " \
           + f"p ({metrics[0]}, randomization / t-test) |"
    rows = [head, "|" + "---|" * (len(metrics) + 7)]
    rows.append("| first stage | " + " | ".join(f"{result.first_stage_metrics[m]:.4f}" for m in metrics)
                + " | | | | | | |")
    for r in result.results:
        test = r.significance[metrics[0]]
        rows.append(
            f"| {r.k} | " + " | ".join(f"{r.metrics[m]:.4f}" for m in metrics)
            + f" | {r.first_stage_recall:.4f} | {r.latency_ms['p50']:.1f} | {r.latency_ms['p95']:.1f}"
            + f" | {r.latency_ms['p99']:.1f} | {r.pairs_per_second:.1f}"
            + f" | {test.p_randomization:.4f} / {test.p_ttest:.4f} |"
        )
    machine = ", ".join(f"{k} {v}" for k, v in result.machine.items())
    text = [
        f"# Two-stage experiment: {result.dataset}",
        "",
        f"First stage **{result.first_stage}**, reranker **{result.reranker}**, {result.queries} judged queries, "
        f"binary relevance at grade >= {result.relevance_level} (nDCG uses all grades). Quality: reranked top K, "
        "the rest in first-stage order. Latency: one query's K pairs scored alone, per query.",
        "",
        *rows,
        "",
        f"Scoring all pairs of the deepest K in one batched pass took {result.scoring_seconds:.1f} s.",
        f"Machine: {machine}.",
    ]
    if files and "quality_vs_k" in files:
        text += ["", f"![quality vs K]({files['quality_vs_k']})", f"![latency vs K]({files['latency_vs_k']})",
                 f"![quality vs latency]({files['quality_vs_latency']})"]
    for note in result.notes:
        text += ["", note]
    return "\n".join(text) + "\n"


def _plots(result: ExperimentResult, paths: dict[str, Path]) -> None:
    require_plotting()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = [r.k for r in result.results]
    metrics = list(result.first_stage_metrics)
    title = f"{result.dataset}: {result.reranker} over {result.first_stage}"

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for m in metrics:
        ax.plot(ks, [r.metrics[m] for r in result.results], marker="o", label=f"reranked {m}")
        ax.axhline(result.first_stage_metrics[m], linestyle=":", color="grey")
    ax.plot(ks, [r.first_stage_recall for r in result.results], marker="s", linestyle="--",
            label="first-stage Recall@K (ceiling)")
    ax.set_xscale("log")
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_xlabel("K (candidates reranked)")
    ax.set_ylabel("metric")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(paths["quality_vs_k"], dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for p in ("p50", "p95", "p99"):
        ax.plot(ks, [r.latency_ms[p] for r in result.results], marker="o", label=p)
    ax.set_xscale("log")
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_xlabel("K (candidates reranked)")
    ax.set_ylabel("rerank latency per query (ms)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(paths["latency_vs_k"], dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    x = [r.latency_ms["p50"] for r in result.results]
    y = [r.metrics[metrics[0]] for r in result.results]
    ax.plot(x, y, marker="o")
    for k, xi, yi in zip(ks, x, y):
        ax.annotate(f"K={k}", (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.axhline(result.first_stage_metrics[metrics[0]], linestyle=":", color="grey", label="first stage")
    ax.set_xlabel("p50 rerank latency per query (ms)")
    ax.set_ylabel(metrics[0])
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(paths["quality_vs_latency"], dpi=120)
    plt.close(fig)
