"""Load test of `crossrank serve`: throughput and latency at concurrency 1, 8 and 32, and memory over 10k requests.

Realistic request: one TREC DL 2020 query with 50 of its BM25 candidate passages (/v2/rerank, Cohere shape).
The offline engine scores the same pairs in-process first (one call, CrossEncoder.score): the ceiling the
server's cross-request batching is measured against. The memory soak sends 10,000 small requests (one
query, two short passages) and reads the server's resident memory before and after.

    python benchmarks/serve_load.py [--requests-per-level 32 96 192] [--soak 10000]

Writes benchmarks/results/serve_load.json and .md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from throughput import DATA, load_pairs  # noqa: E402


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


async def run_level(url: str, requests: list[dict], concurrency: int) -> dict:
    import httpx

    latencies: list[float] = []
    queue: asyncio.Queue = asyncio.Queue()
    encoded = {}
    for r in requests:  # serialise once: the client should cost the shared CPU as little as possible
        queue.put_nowait(encoded.setdefault(id(r), json.dumps(r).encode()))

    async def worker(client):
        while not queue.empty():
            body = queue.get_nowait()
            start = time.perf_counter()
            response = await client.post(f"{url}/v2/rerank", content=body,
                                         headers={"content-type": "application/json"})
            response.raise_for_status()
            latencies.append(time.perf_counter() - start)

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        start = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        wall = time.perf_counter() - start
    ms = np.array(latencies) * 1000
    pairs = sum(len(r["documents"]) for r in requests)
    return {"concurrency": concurrency, "requests": len(requests), "pairs": pairs, "seconds": wall,
            "pairs_per_second": pairs / wall, "requests_per_second": len(requests) / wall,
            "p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)),
            "p99_ms": float(np.percentile(ms, 99))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests-per-level", type=int, nargs=3, default=[24, 96, 192])
    parser.add_argument("--soak", type=int, default=10_000)
    parser.add_argument("--max-wait-ms", type=float, default=None, help="server's gathering window")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()

    import torch

    from crossrank import CrossEncoder
    from crossrank.evaluation.machine import machine_info

    pairs = load_pairs(DATA, 20)  # 20 queries x 100 candidates
    requests = [{"query": pairs[q * 100][0], "documents": [d for _, d in pairs[q * 100:q * 100 + 50]]}
                for q in range(20)]

    torch.set_num_threads(2)
    ce = CrossEncoder()
    level_requests = [[requests[i % len(requests)] for i in range(n)] for n in args.requests_per_level]
    offline_pairs = [(r["query"], d) for r in level_requests[-1] for d in r["documents"]]
    ce.score(offline_pairs[:64])

    def offline_rate() -> float:
        start = time.perf_counter()
        ce.score(offline_pairs)
        return len(offline_pairs) / (time.perf_counter() - start)

    offline_runs = [offline_rate()]
    print(f"offline engine: {offline_runs[0]:.1f} pairs/s on {len(offline_pairs)} pairs", file=sys.stderr)

    flags = ["--max-wait-ms", str(args.max_wait_ms)] if args.max_wait_ms is not None else []
    server = subprocess.Popen([sys.executable, "-m", "crossrank.cli.app", "serve", "--port", "0",
                               "--server-log-level", "warning", *flags], stderr=subprocess.PIPE, text=True)
    try:
        url = server.stderr.readline().strip().rsplit(" ", 1)[-1]
        import httpx

        for _ in range(600):
            try:
                if httpx.get(f"{url}/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        asyncio.run(run_level(url, requests[:2], 2))  # warm-up
        levels = []
        for concurrency, reqs in zip((1, 8, 32), level_requests):
            levels.append(asyncio.run(run_level(url, reqs, concurrency)))
            print(json.dumps(levels[-1]), file=sys.stderr)

        small = [{"query": f"query {i % 97}", "documents": ["a short passage", f"another passage {i % 13}"]}
                 for i in range(args.soak)]
        before = rss_mb(server.pid)
        soak = asyncio.run(run_level(url, small, 32))
        after = rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(60)
    # The machine drifts; measure the offline engine again after the server is gone and keep the best
    # (the stricter ceiling for the server to be compared with).
    offline_runs.append(offline_rate())
    offline = max(offline_runs)

    result = {"machine": machine_info(), "offline_pairs_per_second": offline, "offline_runs": offline_runs,
              "levels": levels,
              "ratio_at_32": levels[-1]["pairs_per_second"] / offline,
              "soak": {"requests": args.soak, "rss_mb_before": before, "rss_mb_after": after,
                       "growth": (after - before) / before, "requests_per_second": soak["requests_per_second"]}}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "serve_load.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "serve_load.md").write_text(markdown(result))
    print(markdown(result))


def markdown(r: dict) -> str:
    lines = ["# `crossrank serve` under load", "",
             "Request: 1 TREC DL 2020 query + 50 BM25 candidate passages, POST /v2/rerank, demo model (MiniLM-L6 "
             "architecture), CPU fp32, client and server on the same 2-core machine.", "",
             "| concurrency | requests | pairs/s | requests/s | p50 ms | p95 ms | p99 ms | vs offline engine |",
             "|---|---|---|---|---|---|---|---|"]
    for level in r["levels"]:
        lines.append(f"| {level['concurrency']} | {level['requests']} | {level['pairs_per_second']:.1f} | "
                     f"{level['requests_per_second']:.2f} | {level['p50_ms']:.0f} | {level['p95_ms']:.0f} | "
                     f"{level['p99_ms']:.0f} | {level['pairs_per_second'] / r['offline_pairs_per_second']:.0%} |")
    s = r["soak"]
    lines += ["", f"Offline engine on the same pairs (one in-process call, best of a run before and after the "
              f"server): {r['offline_pairs_per_second']:.1f} pairs/s. "
              f"At concurrency 32 the server reaches **{r['ratio_at_32']:.0%}** of it.", "",
              f"Memory: server RSS {s['rss_mb_before']:.0f} MB before and {s['rss_mb_after']:.0f} MB after "
              f"{s['requests']:,} more requests (1 query + 2 short passages, concurrency 32, "
              f"{s['requests_per_second']:.0f} requests/s): growth {s['growth']:+.1%}.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
