"""Domain errors a caller can act on; ``service.api.errors`` turns each into one HTTP shape.

Each carries a stable ``code`` and a ``retriable`` flag (after aiokafka's errors), and never
mentions HTTP: the core stays usable from the indexer and the CLI.
"""

from __future__ import annotations


class ShopRankError(Exception):
    """Base of every error ShopRank raises on purpose."""

    code = "internal"
    retriable = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(ShopRankError):
    """The caller sent something the models or the index cannot take."""

    code = "invalid_input"


class PayloadTooLarge(ShopRankError):
    """Too many candidates, texts or bytes in one request."""

    code = "payload_too_large"


class NotFound(ShopRankError):
    """An item (or other named thing) the caller referred to does not exist."""

    code = "not_found"


class UnknownProfile(NotFound):
    """A weight profile name that is not configured."""

    code = "unknown_profile"


class StaleVersion(ShopRankError):
    """A write carried a version not newer than the stored one."""

    code = "stale_version"


class Unauthorized(ShopRankError):
    """A write or admin call without the right API key."""

    code = "unauthorized"


class DependencyUnavailable(ShopRankError):
    """Triton, Redis or Kafka did not answer; try again later."""

    code = "dependency_unavailable"
    retriable = True

    def __init__(self, message: str, *, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class NotReady(DependencyUnavailable):
    """The service is still loading models or building indexes."""

    code = "not_ready"
