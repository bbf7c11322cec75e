"""Workflow experiments as data: their settings as the workflow resolves them, their runs, and their cost."""
