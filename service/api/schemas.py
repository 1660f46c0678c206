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
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from service.ranking.engagement_prior import POPULARITY_FEATURE
from service.settings import Settings
from service.tasks import TASKS

STRICT = ConfigDict(extra="forbid", allow_inf_nan=False)
# Whitespace is Python's str.isspace() set, the one item events use (service/stream/events.py: titles and ids are
# stripped / must not be blank), spelled with \uXXXX escapes that Python, Rust (pydantic-core) and ECMAScript
# regexes all read alike (their \s sets differ). Texts are checked against their limits first and stripped after,
# so the schema's maxLength and pattern are exactly what is enforced.
_WS = ("\\t\\n\\u000b\\u000c\\r\\u001c-\\u001f \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f"
       "\\u205f\\u3000")
NOT_BLANK = f"[^{_WS}]"  # some character that is not whitespace
ITEM_ID_PATTERN = f"^[^{_WS}]([\\s\\S]*[^{_WS}])?$"  # an id: not blank, no surrounding whitespace


def _strip(text: str) -> str:
    return text.strip()


Task = Literal[TASKS]


def _not_a_bool(value: Any) -> Any:
    """JSON true/false is not a number (pydantic would read it as 1/0). Used as a ``field_validator`` (mode
    "before") rather than in the type, which would hide the field's minimum/maximum from the schema."""
    if isinstance(value, bool):
        raise ValueError("a number is expected, not true/false")
    if isinstance(value, dict):  # number-valued maps (features)
        for inner in value.values():
            _not_a_bool(inner)
    return value
# the largest integer every JSON reader holds exactly (JavaScript's Number.MAX_SAFE_INTEGER): a reader that
# parses numbers as doubles (browsers, many schema validators) would compare a larger limit, or version, inexactly.
# Events on the stream may carry any int64 version; the HTTP API takes versions up to this.
MAX_VERSION = 2**53 - 1
MAX_POPULARITY = 10.0  # a log-odds offset: ±10 already moves any CTR to ~0 or ~1


class WeightsOverride(BaseModel):
    """Value-model weights laid over the chosen profile; omitted heads keep the profile's weight. The merged
    weights must not all be 0: the schema rules out three explicit zeros; zeros that only sum to nothing with
    the profile's own zeros get a 422 too (JSON Schema cannot see the profile)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, json_schema_extra={"not": {
        "required": ["relevance", "ctr", "cvr"],
        "properties": {"relevance": {"const": 0}, "ctr": {"const": 0}, "cvr": {"const": 0}}}})
    relevance: float | None = Field(None, ge=0, le=1000)
    ctr: float | None = Field(None, ge=0, le=1000)
    cvr: float | None = Field(None, ge=0, le=1000)
    _numbers = field_validator("relevance", "ctr", "cvr", mode="before")(_not_a_bool)


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
    score: float = Field(description="dense: cosine similarity of query and item embeddings; lexical: BM25 of the "
                                     "title; hybrid: the reciprocal-rank-fusion score of the two lists")


RetrievalMode = Literal["dense", "lexical", "hybrid"]


class RetrieveResponse(BaseModel):
    model_version: str
    mode: RetrievalMode | None = Field(None, description="the retrieval mode that answered")
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
    relevance_floor: float | None = Field(None, description="the P(y ≥ partial) floor a cross-encoder-scored "
                                                            "(phase 2) keyphrase had to clear")
    first_phase_relevance_floor: float | None = Field(None, description="the floor a keyphrase scored by the first "
                                                                        "phase only (phase 1) had to clear; null when "
                                                                        "phasing is off")


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
    def text(max_chars: int):
        return Annotated[str, StringConstraints(min_length=1, max_length=max_chars, pattern=NOT_BLANK),
                         AfterValidator(_strip)]

    Query_, Text = text(settings.max_query_chars), text(settings.max_text_chars)
    ItemId = Annotated[str, StringConstraints(min_length=1, max_length=settings.max_item_id_chars,
                                              pattern=ITEM_ID_PATTERN)]  # as the path's: ids are not stripped
    Category = Annotated[str, StringConstraints(max_length=settings.max_text_chars), AfterValidator(_strip)]
    Profile = Literal[tuple(sorted(settings.profiles))]
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

        _numbers = field_validator("features", mode="before")(_not_a_bool)

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
        # ids are the caller's labels: a repeated id is ranked as a candidate of its own (JSON Schema cannot say
        # "unique by id", and the schema must say exactly what is accepted)
        items: list[RankCandidate] = Field(min_length=1, max_length=settings.max_candidates)
        profile: Profile | None = Field(None, description="named weight set (SHOPRANK_PROFILES)")
        weights: WeightsOverride | None = Field(None, description="laid over the profile's weights; the merged "
                                                                  "weights must not all be 0 (else 422)")
        min_relevance: float | None = Field(None, ge=0, le=1, description="P(y ≥ partial) floor; below → filtered")
        task: Task = Field("query_item", description="the entity-pair task; the served ranker's card says which it "
                                                     "serves (another answers 422)")
        rerank_depth: int | None = Field(
            None, ge=0, le=settings.max_candidates,
            description=f"how many of the first phase's best candidates the cross-encoder re-scores: 0 = first "
                        f"phase only, ≥ the number of items = every item (no first phase); default "
                        f"{settings.rerank_depth} (SHOPRANK_RERANK_DEPTH), at most {settings.max_candidates}")
        defer_uncached: StrictBool = Field(
            True, description=f"a query re-scored before whose re-scored set the cache holds but for at most "
                              f"{settings.rerank_defer_max} pairs (SHOPRANK_RERANK_DEFER_MAX) answers without them "
                              f"(phase 1) and scores them for the next request; false: re-score every one first")
        _numbers = field_validator("min_relevance", "rerank_depth", mode="before")(_not_a_bool)

    class RetrieveRequest(BaseModel):
        model_config = STRICT
        query: Query_
        k: K = 20
        mode: RetrievalMode | None = Field(None, description=f"dense (the item index), lexical (BM25 over titles) or "
                                                             f"hybrid (both, reciprocal rank fusion); default "
                                                             f"{settings.retrieval_mode} (SHOPRANK_RETRIEVAL_MODE)")
        _numbers = field_validator("k", mode="before")(_not_a_bool)

    class KeyphraseItem(BaseModel):
        model_config = STRICT
        title: Text
        category: Category = ""

    class KeyphraseRequest(BaseModel):
        model_config = ConfigDict(extra="forbid", allow_inf_nan=False, json_schema_extra={
            "oneOf": [{"required": ["item"]}, {"required": ["item_id"]}]})  # exactly one of them
        item: KeyphraseItem = Field(None, description="an ad-hoc item (give this or item_id)")
        item_id: ItemId = Field(None, description="a stored item (give this or item)")
        k: K = 20
        rerank_depth: int | None = Field(
            None, ge=0, le=settings.max_k * settings.keyphrase_candidates_factor,
            description="how many of the first phase's best ANN candidates the cross-encoder re-scores (0 = none); "
                        "default SHOPRANK_KEYPHRASE_RERANK_DEPTH, else k. A non-default depth bypasses the cache")
        _numbers = field_validator("k", "rerank_depth", mode="before")(_not_a_bool)

        @model_validator(mode="after")
        def _one_item(self) -> "KeyphraseRequest":
            if (self.item is None) == (self.item_id is None):
                raise ValueError("give exactly one of 'item' (title, category) or 'item_id'")
            return self

    class ItemWrite(BaseModel):
        model_config = STRICT
        # tolerated when it repeats the path's id (a copied event payload); kept out of the schema, which
        # cannot say "equal to the path" — the path names the item
        item_id: SkipJsonSchema[ItemId | None] = None
        version: int = Field(ge=0, le=MAX_VERSION, description="must be newer than the stored version (else 409)")
        title: Text
        category: Category = ""
        attributes: dict[str, Any] = Field(default_factory=dict, max_length=settings.max_attributes)
        price: float | None = Field(None, ge=0)
        updated_at: str | None = Field(None, max_length=64)
        _numbers = field_validator("version", "price", mode="before")(_not_a_bool)

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
        ItemIdPath=Annotated[str, Path(min_length=1, max_length=settings.max_item_id_chars, pattern=ITEM_ID_PATTERN)],
        VersionQuery=Annotated[int, Query(ge=0, le=MAX_VERSION, description="the delete's version; must be newer than the stored one")],
    )
