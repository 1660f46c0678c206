"""The unified cross-encoder ranker: shared MiniLM encoder, ordinal relevance head(s), engagement heads."""
