"""First phase of phased ranking: small heads over the served encoder's two vectors, distilled from the ranker.

``pairs`` builds the (task, left, right) pairs of one split, ``targets`` scores them with the served ranker
(all four raw logits), ``embed`` embeds both sides with the served encoder, ``model`` is the MLP and its
loss, ``train`` fits it, ``evaluate`` reads figures against the human labels (and the served model's on one
split), ``export`` writes ONNX + card + Triton config into a model repository, and ``step`` runs the whole
thing (``shoprank train first-phase`` and the recipe step).
"""
