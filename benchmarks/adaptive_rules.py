"""Candidate rules for the adaptive pool, side by side with its rivals at fixed loads (issue "Guarantees",
item 4): `benchmarks/scheduler_loads.py` with these schedulers registered as well.

    python benchmarks/adaptive_rules.py MODEL SELECTION --mirror ../shared/data --clock virtual \\
        --rates 300,450,600,800,1000 --out results/benchmarks/.../adaptive_rules_sst2_fastbert.json

- ``adaptive-below-batch``: the rule ``layer-pool-adaptive`` had until ``ce0fabf``: compaction's engine call
  while fewer than a batch wait and none is in flight, layer-pool's steps otherwise.
- ``pool-oldest``: layer-pool's steps, always on the pool of the oldest query (layer-pool prefers the
  deepest full pool), which bounds how long a query deep in the layers waits behind fresh batches.

Every other argument is `scheduler_loads.py`'s; the default schedulers are compaction, layer-pool,
layer-pool-adaptive and both candidates.
"""

from __future__ import annotations

import sys

import scheduler_loads

from fastexit_bench.serving.schedulers import SCHEDULER_TYPES, LayerPool, LayerPoolAdaptive


@SCHEDULER_TYPES.add
class AdaptiveBelowBatch(LayerPoolAdaptive):
    """Compaction while nothing is past layer 1 and fewer than a batch wait; layer-pool otherwise."""

    name = "adaptive-below-batch"

    def light(self) -> bool:
        return len(self.pools[0]) < self.max_batch and not any(self.pools[1:])


@SCHEDULER_TYPES.add
class PoolOldest(LayerPool):
    """Layer-pool that always steps the pool holding the oldest query."""

    name = "pool-oldest"

    def next_layer(self) -> int:
        return min((k for k, pool in enumerate(self.pools) if pool), key=lambda k: self.pools[k][0].arrival)


CANDIDATES = "compaction,layer-pool,layer-pool-adaptive,adaptive-below-batch,pool-oldest"

if __name__ == "__main__":
    argv = sys.argv[1:]
    scheduler_loads.run(argv if "--schedulers" in argv else [*argv, "--schedulers", CANDIDATES])
