"""Benchmarks: our way against the plain transformers way, same model, same run."""
