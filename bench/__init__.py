"""Benchmarks of kube-token-broker: `python -m bench` (see bench/__main__.py). Run by hand, not in CI."""
