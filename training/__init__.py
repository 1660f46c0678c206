"""Offline training: labels, the multi-task cross-encoder ranker, the bi-encoder student, export."""
