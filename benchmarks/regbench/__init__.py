"""Support code for ``benchmarks/registry_ops.py`` (Cairn vs. stock MLflow registry workload)."""
