"""Ordinal relevance maths and the unified value model (pure functions, no I/O)."""
