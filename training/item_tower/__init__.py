"""A smaller item tower distilled from the served encoder, for the indexer's throughput.

The served encoder embeds both queries and items. Items are embedded far more often than queries are
per unit of freshness (every catalogue write, every replica catch-up, every start-up build), so the
item side can use a shallower copy of the student trained to land on the same vectors (the eBay
paper's "micro" item model): queries keep the full encoder, and the index stays in one space.

- ``from_onnx``: the served student rebuilt as torch weights from its int8 ONNX file;
- ``model``: the tower (a subset of the student's layers + its adaptor) and its sentence-transformers dir;
- ``train``: MSE distillation onto the served item vectors, with a held-out fidelity check;
- ``gate``: catalogue recall@k through the served funnel, tower items against the encoder's, on validation.
"""
