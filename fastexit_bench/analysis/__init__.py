"""Everything computed from saved evaluation artefacts, with numpy only (no torch): the artefact, metrics,
exit policies, sweeps, FLOP models and operating points."""
