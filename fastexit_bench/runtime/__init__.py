"""Running trained models: batches, the early-exit engine and the latency harness."""
