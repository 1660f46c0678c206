"""HTTP request and response models, named by role (``RankRequest``, ``RankResponse``, …).

Request limits are settings, so request models are built per app by ``request_models(settings)``
and the OpenAPI page shows the limits actually enforced. Texts are stripped and must not be
empty; NaN/Infinity are refused; unknown fields are refused (a typo must not pass silently).
A list over its limit (``items`` > ``max_candidates``) answers 413 ``payload_too_large``; every
other violation answers 422 (see ``service.api.errors``).

Route modules annotate bodies with these per-app classes, so they must not use
``from __future__ import annotations`` (FastAPI would look the names up in module globals).
"""

import json
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import Path, Query
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from service.ranking.engagement_prior import POPULARITY_FEATURE
from service.settings import Settings

STRICT = ConfigDict(extra="forbid", allow_inf_nan=False)
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
MAX_VERSION = 2**63 - 1  # versions are stored as signed 64-bit integers (Redis, the vector log)
MAX_POPULARITY = 10.0  # a log-odds offset: ±10 already moves any CTR to ~0 or ~1


class WeightsOverride(BaseModel):
    """Value-model weights laid over the chosen profile; omitted heads keep the profile's weight."""

    model_config = STRICT
    relevance: float | None = Field(None, ge=0, le=1000)
    ctr: float | None = Field(None, ge=0, le=1000)
    cvr: float | None = Field(None, ge=0, le=1000)


# --- responses (fields may be added; names keep their meaning)
class RelevanceOut(BaseModel):
    p_partial_or_better: float = Field(description="P(y ≥ partial), the relevance floor compares with this")
    p_exact: float = Field(description="P(y = exact)")
    expected: float = Field(description="E[y] on 0 (irrelevant) … 2 (exact)")
    label: Literal["irrelevant", "partial", "exact"]


class EngagementOut(BaseModel):
    ctr: float = Field(description="predicted click probability (heads trained on simulated clicks)")
    cvr: float = Field(description="predicted conversion probability (simulated)")


class RankedItemOut(BaseModel):
    id: str
    score: float = Field(description="unified value-model score in [0, 1]")
    relevance: RelevanceOut
    engagement: EngagementOut
    filtered: bool = Field(description="P(y ≥ partial) under min_relevance; such items come last")
    phase: Literal[1, 2] = Field(2, description="which phase scored the item: 1 = the first phase only (a small "
                                                "model over the query and item vectors), 2 = the cross-encoder")


class RankResponse(BaseModel):
    model_version: str
    items: list[RankedItemOut]


class RetrievedItemOut(BaseModel):
    id: str
    title: str
    category: str = ""
    score: float = Field(description="cosine similarity of query and item embeddings")


class RetrieveResponse(BaseModel):
    model_version: str
    items: list[RetrievedItemOut]


class KeyphraseOut(BaseModel):
    keyphrase: str
    score: float = Field(description="cosine similarity of item and keyphrase embeddings (the ANN score)")
    relevance: RelevanceOut
    phase: Literal[1, 2] = Field(2, description="1 = relevance from the first phase only, 2 = from the cross-encoder")


class KeyphraseResponse(BaseModel):
    model_version: str
    source: Literal["cache", "computed"]
    keyphrases: list[KeyphraseOut]


class ItemResponse(BaseModel):
    """``GET /v1/items/{id}``: the stored document and what this replica's index holds for it."""

    item_id: str
    version: int = Field(description="the stored document's version (shared store: may be ahead of this replica)")
    title: str
    category: str = ""
    attributes: dict[str, Any] = Field(default_factory=dict)
    price: float | None = None
    updated_at: str | None = None
    searchable_version: int | None = Field(
        description="the version whose vector this replica's index holds (null: none); retrieval finds the item "
                    "by that version's text. Lower than `version` while the replica catches up; a price- or "
                    "attribute-only update advances it without re-embedding")


class ItemWriteResponse(BaseModel):
    item_id: str
    version: int
    status: Literal["applied", "published"] = Field(description="applied here, or published to the item stream")


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody


class StatusResponse(BaseModel):
    status: str
    model_version: str | None = None


class ReadyResponse(StatusResponse):
    phasing: str | None = Field(None, description="phased ranking: 'on: …' or 'off: why' (docs/serving.md)")


@dataclass(frozen=True)
class RequestModels:
    """The request models and path/query parameter types of one app, with its limits."""

    RankRequest: type[BaseModel]
    RetrieveRequest: type[BaseModel]
    KeyphraseRequest: type[BaseModel]
    ItemWrite: type[BaseModel]
    ItemIdPath: Any
    VersionQuery: Any


def request_models(settings: Settings) -> RequestModels:
    Query_ = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=settings.max_query_chars)]
    Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=settings.max_text_chars)]
    Category = Annotated[str, StringConstraints(strip_whitespace=True, max_length=settings.max_text_chars)]
    ItemId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=settings.max_item_id_chars)]
    K = Annotated[int, Field(ge=1, le=settings.max_k, description=f"results wanted, 1…{settings.max_k}")]

    class RankCandidate(BaseModel):
        model_config = STRICT
        id: ItemId
        title: Text
        category: Category = ""
        features: dict[str, float] = Field(default_factory=dict, max_length=settings.max_attributes,
                                           description="`popularity`: the item's popularity as log-odds against an average "
                                                       "item (0), e.g. from its historical CTR; it shifts the CTR/CVR "
                                                       "estimates when the served ranker has an engagement fit. "
                                                       "Other keys are accepted and not read.")

        @field_validator("features")
        @classmethod
        def popularity_in_range(cls, features: dict[str, float]) -> dict[str, float]:
            value = features.get(POPULARITY_FEATURE)
            if value is not None and abs(value) > MAX_POPULARITY:
                raise ValueError(f"features.{POPULARITY_FEATURE} is a log-odds offset; keep it within "
                                 f"±{MAX_POPULARITY:g} (got {value:g})")
            return features

    class RankRequest(BaseModel):
        model_config = STRICT
        query: Query_
        items: list[RankCandidate] = Field(min_length=1, max_length=settings.max_candidates)
        profile: Name | None = Field(None, description=f"named weight set: {sorted(settings.profiles)}")
        weights: WeightsOverride | None = None
        min_relevance: float | None = Field(None, ge=0, le=1, description="P(y ≥ partial) floor; below → filtered")
        task: Name = "query_item"
        rerank_depth: int | None = Field(
            None, ge=0, le=settings.max_candidates,
            description=f"how many of the first phase's best candidates the cross-encoder re-scores: 0 = first "
                        f"phase only, ≥ the number of items = every item (no first phase); default "
                        f"{settings.rerank_depth} (SHOPRANK_RERANK_DEPTH), at most {settings.max_candidates}")

        @model_validator(mode="after")
        def _distinct_ids(self) -> "RankRequest":
            if len({item.id for item in self.items}) != len(self.items):
                raise ValueError("items: every candidate needs a distinct id")
            return self

    class RetrieveRequest(BaseModel):
        model_config = STRICT
        query: Query_
        k: K = 20

    class KeyphraseItem(BaseModel):
        model_config = STRICT
        title: Text
        category: Category = ""

    class KeyphraseRequest(BaseModel):
        model_config = STRICT
        item: KeyphraseItem | None = None
        item_id: ItemId | None = None
        k: K = 20
        rerank_depth: int | None = Field(
            None, ge=0, le=settings.max_k * settings.keyphrase_candidates_factor,
            description="how many of the first phase's best ANN candidates the cross-encoder re-scores (0 = none); "
                        "default SHOPRANK_KEYPHRASE_RERANK_DEPTH, else k. A non-default depth bypasses the cache")

        @model_validator(mode="after")
        def _one_item(self) -> "KeyphraseRequest":
            if (self.item is None) == (self.item_id is None):
                raise ValueError("give exactly one of 'item' (title, category) or 'item_id'")
            return self

    class ItemWrite(BaseModel):
        model_config = STRICT
        item_id: ItemId | None = Field(None, description="optional; when given it must equal the path's id")
        version: int = Field(ge=0, le=MAX_VERSION, description="must be newer than the stored version (else 409)")
        title: Text
        category: Category = ""
        attributes: dict[str, Any] = Field(default_factory=dict, max_length=settings.max_attributes)
        price: float | None = Field(None, ge=0)
        updated_at: str | None = Field(None, max_length=64)

        @field_validator("attributes")
        @classmethod
        def _storable_attributes(cls, attributes: dict[str, Any]) -> dict[str, Any]:
            """Refuse text UTF-8 cannot hold (JSON's lone surrogates, e.g. ``"\\ud907"``) anywhere in the
            attributes: the store and the event log write UTF-8, so such a document would be accepted and then
            fail to store or read back. (``str`` fields get the same check from pydantic itself.)"""
            try:
                json.dumps(attributes, ensure_ascii=False).encode("utf-8")
            except UnicodeEncodeError as exc:
                raise ValueError(f"attributes: text must be valid Unicode; it holds a lone surrogate "
                                 f"({exc.object[exc.start:exc.end]!a})") from None
            return attributes

    return RequestModels(
        RankRequest=RankRequest, RetrieveRequest=RetrieveRequest, KeyphraseRequest=KeyphraseRequest,
        ItemWrite=ItemWrite,
        ItemIdPath=Annotated[str, Path(min_length=1, max_length=settings.max_item_id_chars)],
        VersionQuery=Annotated[int, Query(ge=0, le=MAX_VERSION, description="the delete's version; must be newer than the stored one")],
    )
