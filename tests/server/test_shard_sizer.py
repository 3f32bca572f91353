"""ShardSizer on a simulated cost: shards reach their target size within a few observations.

The cost model is what a worker sees: its first shard pays a one-off setup (the context's
fetch and unpickling, golden activations, the batched path's calibration), and trials get
cheaper per trial in large shards (the batched path puts K faults in one forward). The old
sizer (an exponential moving average of seconds per trial, 0.7 old / 0.3 new) kept the
setup-inflated first figure for about ten shards: the gpu_campaign smoke bench ran 115- and
376-trial shards where 2000 were due.
"""

from __future__ import annotations

from faultlab.server.scheduler import ShardSizer

SHARD_SECONDS = 5.0


def cost(trials: int, first_on_worker: bool, per_trial: float = 1e-3) -> float:
    """Setup 0.3 s on a worker's first shard; 2.5 × ``per_trial`` below 500 trials."""
    scale = 2.5 if trials < 500 else 1.0
    return (0.3 if first_on_worker else 0.0) + trials * per_trial * scale


def run(sizer: ShardSizer, shards: int, per_trial: float = 1e-3, workers: int = 2,
        fresh: bool = True) -> list[int]:
    """Sizes of ``shards`` shards cut one after another, each observed when it finishes."""
    sizes, seen = [], set() if fresh else set(range(workers))
    for k in range(shards):
        size = sizer.size(SHARD_SECONDS)
        sizes.append(size)
        worker = k % workers
        sizer.observe(cost(size, worker not in seen, per_trial), size)
        seen.add(worker)
    return sizes


def test_first_shards_are_small_then_the_size_reaches_the_target_quickly() -> None:
    sizer = ShardSizer(4)
    sizes = run(sizer, 6)
    assert sizes[0] == 4
    # the target is 5000 trials (1 ms each in big shards); within 4 shards it is above 1000
    assert max(sizes[:4]) >= 1000, sizes
    assert sizes[-1] >= 2000, sizes


def test_a_shard_never_takes_much_longer_than_its_target() -> None:
    sizer = ShardSizer(4)
    for size in run(sizer, 30):
        assert cost(size, False) <= 1.5 * SHARD_SECONDS, size


def test_the_size_follows_a_cost_that_rises() -> None:
    sizer = ShardSizer(4)
    run(sizer, 20)
    slow = run(sizer, 4, per_trial=1e-2, fresh=False)  # ten times dearer trials from now on
    assert cost(slow[-1], False, 1e-2) <= 1.5 * SHARD_SECONDS, slow


def test_the_size_follows_a_cost_that_falls() -> None:
    sizer = ShardSizer(4)
    run(sizer, 20, per_trial=1e-2)
    fast = run(sizer, 5, per_trial=1e-3, fresh=False)  # small shards are dear: it doubles
    assert fast[-1] >= 2500, fast
