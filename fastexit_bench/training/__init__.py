"""Training recipes of the early-exit papers (losses first; loops build on them)."""
