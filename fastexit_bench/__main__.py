"""Entry point for ``python -m fastexit_bench``."""

from fastexit_bench.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
