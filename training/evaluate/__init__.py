"""Measuring only (ranking, regression, classification, retrieval figures): nothing here is fitted or chosen.

Fitting on validation is ``training/calibrate.py``; the figures are reported on the held-out test split,
and a report on another split says in its header what was fitted on that split.
"""
