"""Shared pieces of the benchmarks that drive a peer in another virtual environment, round by round.

A peer whose dependencies conflict with crossrank's (optimum pins transformers 4; OpenVINO's NNCF) runs as
a worker process of its own Python that reads one command per line and answers one JSON line; the
driver alternates the order of every engine each round, so both sides meet the same machine noise.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]


def peer_arguments(description: str, python_flag: str, python_help: str) -> argparse.Namespace:
    from throughput import DATA

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(python_flag, required=True, help=python_help)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--queries", type=int, default=7, help="queries x 100 candidates = pairs")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    return parser.parse_args()


class JsonWorker:
    """A worker process: its first line is a JSON report; then one JSON answer per command line."""

    def __init__(self, python: str, code: str):
        self.process = subprocess.Popen([python, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True, bufsize=1)
        self.first = self._answer()

    def _answer(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the peer worker stopped (exit {self.process.wait()}); see its stderr above")
        return json.loads(line)

    def seconds(self, command: str) -> float:
        self.process.stdin.write(command + "\n")
        return self._answer()["seconds"]

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)


def alternating_rounds(runners: dict[str, Callable[[], float]], rounds: int, pairs: int) -> dict[str, list[float]]:
    """Seconds per round of each runner (each returns its own seconds), after one warm-up each."""
    for run in runners.values():
        run()
    times: dict[str, list[float]] = {name: [] for name in runners}
    for round_ in range(rounds):
        for name in (list(runners) if round_ % 2 == 0 else list(reversed(runners))):
            times[name].append(runners[name]())
        print(f"round {round_ + 1}: " + ", ".join(f"{n} {pairs / t[-1]:.0f}" for n, t in times.items()),
              file=sys.stderr)
    return times
