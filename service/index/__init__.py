"""The index seam: stable 64-bit ids, upsert/delete without rebuild, snapshot/restore."""
