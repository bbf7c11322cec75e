"""Tables, plots and paper-layout tables from sweeps and artefacts (numpy, pandas, matplotlib; no torch)."""

TABLE_PARTS = ("", "_layers", "_calibration", "_paper", "_exits")
"""What `report --name NAME` writes to TABLES: NAME<part>.{md,tex,csv} (and NAME.json, its record)."""
TABLE_SUFFIXES = (".md", ".tex", ".csv")
"""The formats every table is written in."""
POINTS = "_points.csv"
"""What `report` also writes to TABLES: NAME_points.csv, every operating point per seed in numbers (what
`fastexit-bench claims` reads)."""
PLOTS = ("metric_vs_flops", "exit_shares", "layer_metric", "calibration", "method_fronts")
"""What `report` writes to PLOTS: <name>.{png,pdf}; the workflow lists the same files."""
