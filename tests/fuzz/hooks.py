"""Schemathesis hooks for the contract fuzz suite (``tests/integration/test_openapi_fuzz.py``).

One rule of the API cannot be written in JSON Schema: ``/v1/rank``'s ``weights`` are laid over the chosen
profile, and the merged weights must not all be 0 (the value model divides by their sum; the API answers
422 and its schema says so in words). The generator skips exactly those requests; everything else the
schema allows must be accepted.
"""

import schemathesis

from service.settings import Settings


@schemathesis.hook
def filter_body(context, body) -> bool:
    if context.operation is None or context.operation.path != "/v1/rank" or not isinstance(body, dict):
        return True
    profiles = Settings().profiles
    profile = body.get("profile") or "default"
    weights = body.get("weights")
    if not isinstance(profile, str) or profile not in profiles or not isinstance(weights, dict):
        return True
    merged = profiles[profile].model_dump() | {k: v for k, v in weights.items() if v is not None}
    return any(isinstance(v, (int, float)) and v > 0 for v in merged.values())
