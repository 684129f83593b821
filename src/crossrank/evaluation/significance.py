"""Paired significance tests over per-query metric values (system B against baseline A).

The randomization (permutation) test is the IR community's default (Smucker et al., CIKM 2007): under
the null hypothesis each query's pair of values is exchangeable, so random sign flips of the per-query
differences give the null distribution of the mean difference. The paired t-test is reported beside it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class PairedTest:
    mean_difference: float  # mean over queries of (system - baseline)
    p_randomization: float  # two-sided
    p_ttest: float  # two-sided
    queries: int


def paired_test(baseline: dict[str, float], system: dict[str, float], trials: int = 10_000,
                seed: int = 0) -> PairedTest:
    """Compare per-query values on the queries both have."""
    from scipy import stats

    common = sorted(set(baseline) & set(system))
    diff = np.array([system[q] - baseline[q] for q in common], dtype=np.float64)
    if len(diff) == 0:
        return PairedTest(0.0, 1.0, 1.0, 0)
    observed = abs(diff.mean())
    rng = np.random.default_rng(seed)
    signs = rng.choice(np.array([-1.0, 1.0]), size=(trials, len(diff)))
    null = np.abs((signs * diff).mean(axis=1))
    # Count the observed assignment itself, so p is never 0 (Phipson & Smyth 2010).
    p_random = (np.count_nonzero(null >= observed - 1e-12) + 1) / (trials + 1)
    p_t = 1.0 if np.allclose(diff, diff[0]) else float(stats.ttest_rel(
        [system[q] for q in common], [baseline[q] for q in common]).pvalue)
    return PairedTest(float(diff.mean()), float(p_random), p_t, len(diff))
