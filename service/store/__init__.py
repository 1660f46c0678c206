"""Item documents, per-item versions and the keyphrase recommendation cache."""
