"""Segmentation, profiling and explanation models (pure: no I/O)."""
