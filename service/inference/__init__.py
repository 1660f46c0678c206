"""The inference seam: tokenise on the client, run a named model on a backend, post-process."""
