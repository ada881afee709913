"""Operator and developer tooling: the dev stack, demo, device client, finance, benchmarks."""
