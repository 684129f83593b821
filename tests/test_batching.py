"""Token-budget batching: every pair once, budgets respected, and scores independent of the batch."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crossrank.engine.batching import plan_batches

from texts import WORDS


@given(st.lists(st.integers(1, 600), min_size=1, max_size=300), st.integers(1, 5000), st.integers(1, 64))
def test_plan_covers_each_pair_once_and_respects_the_budget(lengths, budget, max_batch):
    batches = plan_batches(np.array(lengths), budget, max_batch)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(len(lengths)))
    for batch in batches:
        longest = max(lengths[i] for i in batch)
        assert len(batch) <= max_batch
        assert len(batch) == 1 or len(batch) * longest <= budget
    # Longest first, and pairs of equal length keep input order.
    order = [lengths[i] for i in flat]
    assert order == sorted(order, reverse=True)
    for a, b in zip(flat, flat[1:]):
        if lengths[a] == lengths[b]:
            assert a < b


texts = st.lists(st.sampled_from(WORDS), min_size=0, max_size=150).map(" ".join)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(texts, min_size=2, max_size=24), st.sampled_from([64, 300, 1000, 100_000]), st.data())
def test_a_pair_scores_the_same_alone_and_in_any_mixed_batch(tiny_ce, docs, budget, data):
    pairs = [("what is protein therapy", d) for d in docs]
    original = tiny_ce.engine.batch_tokens
    try:
        tiny_ce.engine.batch_tokens = budget
        together = tiny_ce.score(pairs)
        pick = data.draw(st.integers(0, len(pairs) - 1))
        alone = tiny_ce.score([pairs[pick]])
    finally:
        tiny_ce.engine.batch_tokens = original
    assert abs(float(alone[0]) - float(together[pick])) <= 1e-5


def test_padding_waste_is_small_for_sorted_batches(tiny_ce):
    rng = np.random.default_rng(0)
    docs = [" ".join(rng.choice(WORDS, size=int(n))) for n in rng.integers(5, 200, size=300)]
    tiny_ce.score([("query", d) for d in docs])
    stats = tiny_ce.last_stats
    assert stats.pairs == 300 and stats.batches >= 2
    assert stats.padding_waste < 0.1
    assert stats.real_tokens <= stats.padded_tokens
