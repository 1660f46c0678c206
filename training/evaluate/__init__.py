"""Held-out evaluation on the test split (never tuned on): ranking, regression and classification figures."""
