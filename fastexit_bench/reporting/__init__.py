"""Tables, plots and paper-layout tables from sweeps and artefacts (numpy, pandas, matplotlib; no torch)."""
