"""Sparsity and compression campaigns (kind ``sparsity``); see docs/sparsity.md."""
