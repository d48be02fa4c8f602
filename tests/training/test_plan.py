"""xpnn.training.plan: each epoch's order of the rows, drawn on the host."""

from __future__ import annotations

import numpy as np
import pytest

from xpnn.training.plan import epoch_plan


def test_one_block_is_the_plain_shuffle():
    (window,) = epoch_plan(np.random.default_rng(3), 50, 50, 1, 8, True)
    np.testing.assert_array_equal(window.indices(), np.random.default_rng(3).permutation(50))


@pytest.mark.parametrize(("block", "interleave"), [(7, 1), (7, 3), (10, 2), (64, 4)])
def test_block_plan_is_a_permutation_dealt_from_its_blocks(block, interleave):
    windows = epoch_plan(np.random.default_rng(0), 50, block, interleave, 8, True)
    order = np.concatenate([w.indices() for w in windows])
    assert sorted(order) == list(range(50))
    share = -(-8 // interleave)
    for window in windows:
        assert len(window.starts) <= interleave
        for slot, start in enumerate(window.starts):
            rows = window.indices()[window.slots == slot] if window.slots is not None else None
            if rows is None:
                rows = window.indices()
            # Each block's rows stay within it, in its own shuffled order.
            np.testing.assert_array_equal(rows, window.orders[slot] + start)
        if window.slots is not None:
            # Dealt in rounds: a block gives at most `share` rows before the next one.
            runs = np.diff(np.flatnonzero(np.diff(window.slots) != 0))
            assert runs.size == 0 or runs.max() <= share


@pytest.mark.parametrize(("block", "interleave"), [(50, 1), (7, 1), (7, 3)])
def test_without_shuffle_the_rows_keep_their_order_per_block(block, interleave):
    rng = np.random.default_rng(0)
    windows = epoch_plan(rng, 50, block, interleave, 8, False)
    assert [w.starts for w in windows] == [
        list(range(0, 50, block))[i : i + interleave] for i in range(0, -(-50 // block), interleave)
    ]
    for window in windows:
        for order in window.orders:
            np.testing.assert_array_equal(order, np.arange(order.shape[0]))
    # Nothing was drawn: the generator is where it started.
    assert rng.random() == np.random.default_rng(0).random()


def test_a_seed_draws_the_same_epochs():
    def orders(seed):
        rng = np.random.default_rng(seed)
        epochs = [epoch_plan(rng, 40, 9, 2, 6, True) for _ in range(3)]
        return [np.concatenate([w.indices() for w in windows]) for windows in epochs]

    first, again = orders(4), orders(4)
    for one, other in zip(first, again, strict=True):
        np.testing.assert_array_equal(one, other)
    # Each epoch draws afresh.
    assert not np.array_equal(first[0], first[1])
