"""The ``crossrank`` command: verbs, shared options, and the one place errors become exit codes.

Exit codes (documented in the README):
  0 success (also when --skip-invalid skipped lines)   1 unexpected internal error
  2 usage error (bad flag or value)                    3 invalid input line
  4 model or backend could not be loaded               5 a file could not be read or written
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Optional

import typer

from crossrank.errors import BackendUnavailableError, InvalidInputError, ModelLoadError

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_INVALID_INPUT, EXIT_MODEL, EXIT_IO = 0, 1, 2, 3, 4, 5

app = typer.Typer(
    name="crossrank",
    help="Fast, exact cross-encoder reranking. Each verb has --help.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        from crossrank import __version__

        typer.echo(f"crossrank {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
    log_level: str = typer.Option("WARNING", "--log-level", help="Logging level on stderr (DEBUG, INFO, ...)."),
) -> None:
    logging.basicConfig(level=log_level.upper(), stream=sys.stderr, format="crossrank: %(levelname)s: %(message)s")


@app.command()
def rerank(
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model folder or hub id; default: shipped model."),
    input: Optional[Path] = typer.Option(None, "--input", "-i", help="JSONL requests; default stdin."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="JSONL results; default stdout."),
    top_k: Optional[int] = typer.Option(None, "--top-k", min=1, help="Keep the best N per request (a line's top_k wins)."),
    batch_tokens: Optional[int] = typer.Option(None, "--batch-tokens", min=1, help="Padded tokens per batch."),
    max_length: Optional[int] = typer.Option(None, "--max-length", min=8, help="Tokens per pair (default: the model's)."),
    query_max_tokens: int = typer.Option(64, "--query-max-tokens", min=1, help="Tokens kept of each query."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:N, mps or auto."),
    skip_invalid: bool = typer.Option(False, "--skip-invalid", help="Report bad lines and go on instead of stopping."),
    return_documents: bool = typer.Option(False, "--return-documents", help="Include each document's text."),
    progress: Optional[bool] = typer.Option(None, "--progress/--no-progress", help="Progress bar on stderr (default: when stderr is a terminal)."),
) -> None:
    """Rerank JSONL requests: {"query": ..., "documents": [text | {"id", "text"}], "top_k"?} per line."""
    from crossrank.cli.output import atomic_output
    from crossrank.cli.progress import pair_progress
    from crossrank.cli.rerank import open_source, run_rerank
    from crossrank.cross_encoder import CrossEncoder

    def work() -> None:
        source = open_source(input)  # a missing input file fails before the model loads
        ce = CrossEncoder(model, device=device, max_length=max_length, batch_tokens=batch_tokens,
                          query_max_tokens=query_max_tokens)
        show = sys.stderr.isatty() if progress is None else progress
        with source, atomic_output(output) as sink, pair_progress(show, "reranking") as advance:
            answered, skipped = run_rerank(ce, source, sink, top_k=top_k, skip_invalid=skip_invalid,
                                           return_documents=return_documents, progress=advance)
        if skipped:
            typer.echo(f"crossrank rerank: answered {answered} requests, skipped {skipped} invalid lines", err=True)

    _run(work)


def _run(work) -> None:
    """Run a verb, turning crossrank's errors into a one-line message and a documented exit code."""
    try:
        work()
    except InvalidInputError as exc:
        _fail(EXIT_INVALID_INPUT, f"invalid input: {exc}")
    except (ModelLoadError, BackendUnavailableError) as exc:
        _fail(EXIT_MODEL, str(exc))
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        _fail(EXIT_IO, f"{exc.filename}: {exc.strerror}" if exc.filename else str(exc))
    except BrokenPipeError:
        sys.stderr.close()
        raise typer.Exit(EXIT_OK)
    except KeyboardInterrupt:
        _fail(130, "interrupted")


def _fail(code: int, message: str) -> None:
    typer.echo(f"crossrank: error: {message}", err=True)
    raise typer.Exit(code)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
