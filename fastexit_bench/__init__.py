"""fastexit-bench: reproducible benchmarks for early-exit transformers."""

__version__ = "0.1.0"
