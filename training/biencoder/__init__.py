"""Bi-encoder student: sentence-transformers training with click, label and distillation losses."""
