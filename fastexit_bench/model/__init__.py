"""Early-exit models: an installed HF encoder plus one exit head after every layer."""
