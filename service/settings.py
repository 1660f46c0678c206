"""The one typed settings object for ShopRank (service, indexer and CLI).

Read once at start-up (``Settings()``) and passed down; no other module reads the
environment. Every name is ``SHOPRANK_<FIELD>`` in upper case; the public ones are
listed in ``shared/API.md`` and the README.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class WeightProfile(BaseModel):
    """Weights of the unified value model: score = Σ w·head / Σ w (heads in [0, 1])."""

    relevance: float = Field(1.0, ge=0)
    ctr: float = Field(0.0, ge=0)
    cvr: float = Field(0.0, ge=0)

    @model_validator(mode="after")
    def _not_all_zero(self) -> WeightProfile:
        if self.relevance + self.ctr + self.cvr <= 0:
            raise ValueError("at least one weight must be positive")
        return self


DEFAULT_PROFILES: dict[str, WeightProfile] = {
    "default": WeightProfile(relevance=1.0, ctr=0.3, cvr=0.3),
    "relevance": WeightProfile(relevance=1.0, ctr=0.0, cvr=0.0),
    "engagement": WeightProfile(relevance=0.3, ctr=1.0, cvr=1.0),
}


PLACEHOLDER_API_KEYS = frozenset({"change-me", "changeme", "change_me", "placeholder", "secret", "password",
                                  "api-key", "apikey", "example", "test", "xxx", "todo"})
"""API keys that are templates' stand-ins, never a real secret (docker-compose.yml ships ``change-me``)."""


class ServerSettings(BaseModel):
    """The HTTP process: where it listens, who may write, what /readyz checks, logs."""

    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    api_key: str | None = None
    # `shoprank serve` with Kafka or Redis (a shared deployment) refuses to start without a real API key, so
    # that writes are never open by accident; true says open writes are intended (a private test rig)
    allow_open_writes: bool = False
    # /readyz checks each configured dependency (Redis, the broker, Triton) within this time, at most once per
    # readiness_cache_s (service/readiness.py)
    readiness_timeout_s: float = Field(0.5, gt=0)
    readiness_cache_s: float = Field(1.0, ge=0)
    log_format: Literal["json", "text"] = "json"
    log_level: str = "INFO"


class InferenceSettings(BaseModel):
    """The inference seam: which backend runs the models, which models, their thread budget and input cuts."""

    inference: Literal["embedded", "triton"] = "embedded"
    triton_url: str = "127.0.0.1:8001"
    triton_timeout_s: float = 5.0
    triton_retries: int = 2
    triton_retry_backoff_s: float = Field(0.05, ge=0)  # first retry delay; doubles per attempt
    triton_retry_after_s: int = Field(2, ge=1)  # Retry-After sent with the 503 when Triton is down
    triton_reconnect_backoff_s: float = Field(1.0, gt=0)  # longest gRPC reconnect back-off after an outage
    model_repo: Path = Path("model_repo")
    encoder_model: str = "encoder"
    # items (catalogue build, indexer, replicas) go through this smaller tower distilled from the encoder when
    # the repository has it for the served encoder version (training/item_tower/); "" = the encoder for both
    item_encoder_model: str = "item_encoder"
    ranker_model: str = "ranker"
    first_phase_model: str = "first_phase"  # off when the repository has none trained on the served encoder
    model_swap_poll_s: float = Field(5.0, ge=0)  # how often the watcher looks for new versions; 0 = off
    # the API's ONNX Runtime threads per inference call. One: its parallelism is across concurrent requests, and
    # on a 2-core host the indexer needs the other core; 2 made every read cost 17–47 % more CPU and doubled the
    # readers' p99 under updates (docs/indexing.md, "Freshness as a user sees it"). Raise it for latency at low load
    intra_op_threads: int = Field(1, ge=1)
    # True: idle ONNX Runtime threads spin-wait for the next op. Off by default: spinning threads of the API and
    # the indexer burn the cores each other need (docs/indexing.md, "Why reads slowed indexing", measured)
    ort_allow_spinning: bool = False
    # BLAS threads (numpy's and FAISS's OpenBLAS) per process, set once at start (service/threads.py); 0 keeps
    # the libraries' default of every core, whose idle threads spin. One: a service's parallelism is across
    # requests (docs/indexing.md, "Thread budgets")
    blas_threads: int = Field(1, ge=0)
    # how long a Python thread may hold the GIL while another waits (sys.setswitchinterval), set at start. 1 ms
    # (Python's default is 5): a read waits less behind the replica follower's and Kafka client's Python work;
    # readers' p99 under 300 updates/s 126/156 → 64/89 ms side by side (docs/indexing.md, "Freshness as a user
    # sees it")
    gil_switch_interval_ms: float = Field(1.0, gt=0)
    # the API exempts what is alive once it is ready (models, indexes, documents) from garbage collection
    # (gc.freeze), so collections triggered by the update stream's allocations do not walk it (service/gc_pauses.py)
    gc_freeze_after_start: bool = True
    inference_sub_batch: int = 32
    # the API's LRU of encoder outputs per (version, kind, text): head queries and rank candidates whose text the
    # index does not hold are encoded once (≈ 1.6 KB a row at 384 dims); 0 = off. Batch embedders keep none
    embedding_cache_size: int = Field(10_000, ge=0)
    query_max_tokens: int = 32
    item_max_tokens: int = 64
    pair_max_tokens: int = 64


class IndexSettings(BaseModel):
    """The index seam: vectors, the ANN index and its backend, the catalogue it starts from, where state lives."""

    embedding_dim: int = 384
    index_kind: Literal["flat", "ivf", "hnsw"] = "flat"
    # Matryoshka funnel (service/index/funnel.py): the ANN index holds this cut and its shortlist of
    # factor × k is rescored at embedding_dim; 0, or a cut not below embedding_dim, searches embedding_dim.
    index_shortlist_dim: int = Field(64, ge=0)
    index_shortlist_factor: int = Field(8, ge=1)
    # how the funnel keeps its full vectors for rescoring (service/index/vector_store.py): int8 with a
    # per-vector scale (388 B per 384-d vector, validation recall@100 as fp16's), or float16 (768 B)
    index_full_precision: Literal["fp16", "int8"] = "int8"
    index_nprobe: int = 32
    index_ef_search: int = 64
    index_nlist: int = 256  # IVF: upper bound on inverted lists (also ≤ first batch / 39)
    index_hnsw_m: int = 32
    index_build_batch: int = 256  # texts per encode call while building an index at start-up
    # FAISS OpenMP threads per search (set in each searching thread); 0 keeps FAISS's default of every core.
    # One, because each request searches one query and an OpenMP team fights ONNX Runtime's spinning
    # threads for the same cores (docs/indexing.md, "Search threads").
    index_search_threads: int = Field(1, ge=0)
    # where the indexes live (service/index/factory.py): in process memory (FAISS), or in Milvus
    # (service/index/milvus_index.py; docs/indexing.md, "Milvus backend")
    index_backend: Literal["faiss", "milvus"] = "faiss"
    # a local path ending in .db = Milvus Lite embedded in this process; http(s)://host:19530 = a Milvus server or
    # cluster; None = state_dir/milvus.db
    milvus_uri: str | None = None
    milvus_collection: str = "shoprank"  # collection name prefix: <prefix>_<items|keyphrases>_<generation>
    milvus_token: str | None = None  # a server's credentials, "user:password" or an API key; unused by Milvus Lite
    # Strong: a search sees every write acknowledged before it (what the NRT tests assume). On a server, Session
    # gives the same to a process that both writes and reads through its one client, and waits less
    milvus_consistency: Literal["Strong", "Bounded", "Session", "Eventually"] = "Strong"
    # Milvus Lite searches its unflushed rows slowly (≈ 60 ms more per 1,000, docs/indexing.md): the index
    # flushes once this many rows were written since the last flush; a server seals and indexes on its own
    milvus_lite_flush_rows: int = Field(1000, ge=1)
    state_dir: Path = Path("var")
    data_dir: Path = Path("data")
    catalogue_limit: int | None = None
    # Parquet written by `shoprank batch-embed` (service/catalogue_vectors.py): a fresh item index takes each seed
    # item's vector from it when the row's model version is the served encoder's and its text is the seed's;
    # the rest are embedded at start-up as without it
    catalogue_vectors: Path | None = None


class KafkaSettings(BaseModel):
    """The broker seam: topics, clients, the indexer worker and the replica follower (docs/indexing.md)."""

    kafka_bootstrap: str | None = None
    kafka_topic: str = "item-updates"
    kafka_dlq_topic: str = "item-updates.dlq"
    kafka_vectors_topic: str = "item-vectors"
    kafka_group: str = "shoprank-indexer"
    kafka_partitions: int = Field(4, ge=1)
    kafka_session_timeout_ms: int = 6000
    kafka_heartbeat_interval_ms: int = 2000
    kafka_request_timeout_ms: int = 10000
    # the longest wait between reconnect attempts to a broker that went away (kafka-python's default grows to
    # 30 s): every client here reconnects within a second of the broker coming back (tests/integration/test_outages.py)
    kafka_reconnect_backoff_max_ms: int = Field(1000, ge=50)
    max_event_bytes: int = Field(16_384, ge=256)
    indexer_batch_max_events: int = Field(256, ge=1)
    indexer_batch_max_wait_s: float = Field(0.02, gt=0)
    indexer_metrics_port: int | None = None
    # ONNX Runtime budget of `shoprank indexer run` (its own process; the API keeps intra_op_threads): one
    # thread and no spinning, right for a small host it shares with the API; more indexer processes (up to
    # kafka_partitions) scale better than more threads (docs/indexing.md, "Operating on bigger hosts")
    indexer_intra_op_threads: int = Field(1, ge=1)
    indexer_ort_allow_spinning: bool = False
    # CPU priority of `shoprank indexer run` and `indexer recommend` (nice increment at start, 0–19): on a host they
    # share with the API, niced workers take the cores the reads leave idle instead of queueing the reads behind
    # them. 0 by default: 10 and 19 measured no better for the readers' p99 on 2 cores (SCHED_IDLE, below, did)
    indexer_nice: int = Field(0, ge=0, le=19)
    # the same workers under Linux's SCHED_IDLE policy: they run on the cores nothing else wants, and a waking API
    # thread preempts them at once (a nice level only shrinks their share: the API still waits out their time
    # slice at every wake-up, several per request). On by default: it halved the API's run-queue wait under 300
    # updates/s. The price: on a host whose reads keep every core busy, the workers wait (watch the consumer lag),
    # so such a host runs them elsewhere or sets this false. docs/indexing.md, "Freshness as a user sees it"
    indexer_sched_idle: bool = True
    # which items `shoprank indexer recommend` recomputes when their text changes: "asked" = those whose keyphrases
    # are cached (asked for within keyphrase_cache_ttl_s), so a retitled item's next request is a cache hit;
    # "all" = every item (about 15 items/s per 2 cores: for hosts with the ranker capacity for the whole stream)
    recommend_scope: Literal["asked", "all"] = "asked"
    replica_id: str | None = None
    replica_snapshot_interval_s: float = Field(60.0, gt=0)
    replica_poll_timeout_s: float = Field(0.05, gt=0)


class RedisSettings(BaseModel):
    """The store seam: unset ``redis_url`` = the in-process store."""

    redis_url: str | None = None
    redis_prefix: str = "shoprank:"
    redis_timeout_s: float = 2.0
    # an item's cached keyphrases live this long after the last request for them (0 = forever): what nobody asks
    # for leaves the cache, and `indexer recommend` (scope "asked") stops refreshing it
    keyphrase_cache_ttl_s: int = Field(7 * 86_400, ge=0)


class LimitsSettings(BaseModel):
    """Request limits, validated at the edge (a request past them gets a 4xx)."""

    max_text_chars: int = 512
    max_query_chars: int = 256
    max_k: int = 200
    max_candidates: int = 200
    max_attributes: int = 64
    max_item_id_chars: int = 128


class RankingSettings(BaseModel):
    """Ranking, keyphrases, phased ranking and hybrid retrieval (docs/serving.md)."""

    profiles: dict[str, WeightProfile] = Field(default_factory=lambda: dict(DEFAULT_PROFILES))
    # None = the floor calibrated for the served ranker version (its card); a number overrides it
    keyphrase_min_relevance: float | None = Field(None, ge=0, le=1)
    keyphrase_candidates_factor: int = Field(3, ge=1)
    keyphrase_cache_k: int = Field(20, ge=1)  # recommendations cached per item (requests with k ≤ this hit the cache)
    # candidates the cross-encoder re-scores after the first phase (0 = first phase only); chosen on the
    # validation split (training/evaluate/phase_curve.py); a request's `rerank_depth` overrides it
    rerank_depth: int = Field(10, ge=0)
    # keyphrases: ANN candidates (k × keyphrase_candidates_factor) the cross-encoder re-scores; None = the k asked
    # for. 15: at k = 20 (60 candidates) the fixed cost (item embedding, search, first phase) leaves 20 re-scored
    # pairs at 0.38× the full cross-encoder's p50, over the 0.35× target (docs/serving.md, "Phased ranking")
    keyphrase_rerank_depth: int | None = Field(15, ge=0)
    pair_cache_size: int = Field(10_000, ge=0)  # LRU of ranker outputs per (version, task, query, title); 0 = off
    # a phased rank whose re-scored set the pair cache holds but for at most this many pairs (a new, retitled or
    # moved-up item; at least one pair held) answers without them, in phase 1, and a background thread at nice
    # `pair_fill_nice` scores them for the next request (service/inference/pair_filler.py); a cold query is
    # re-scored in full. 0 = every pair on the request path. 3: the readers' p99 at 300 updates/s on 2 cores
    # (docs/indexing.md, "2026-12-06: deferred pairs")
    rerank_defer_max: int = Field(3, ge=0)
    pair_fill_nice: int = Field(10, ge=0, le=19)
    pair_fill_max_pending: int = Field(10_000, ge=1)
    # with Redis: ranker pair scores shared by every process (PairScorer's second tier); each rank records its query
    # with the items re-scored, the next `pair_warm_next` in line and its entry bar (the cosine a candidate needs to
    # be among the `rerank_depth` closest); `indexer recommend` scores, off the request path, a changed item against
    # the newest `pair_warm_queries` that re-scored it (or, with a `pair_warm_margin`, whose bar less it it clears; at
    # most `pair_warm_max_pairs` per poll, 0 = none), and the next-in-line pairs a few per poll
    # (indexer/pair_warmer.py). Off by default: on a 2-core box running everything it took the indexer's CPU
    # (visible p99 +100-400 ms at 300 updates/s); for a worker with cores of its own (docs/indexing.md, 2026-12-06)
    pair_warming: bool = False
    pair_score_ttl_s: int = Field(86_400, ge=0)
    pair_shared_retry_s: float = Field(5.0, ge=0)  # after a Redis error the shared scores are skipped this long
    pair_warm_queries: int = Field(1000, ge=1)
    pair_warm_margin: float | None = Field(None, ge=0, le=2)  # None: no newcomer rule (docs/indexing.md, 2026-12-06)
    pair_warm_max_pairs: int = Field(128, ge=0)
    pair_warm_next: int = Field(10, ge=0)  # first-phase rows past the re-scored ones warmed too (they move up)
    # /v1/retrieve's mode when a request names none, and the reciprocal-rank-fusion constant: both chosen on the
    # validation split by bench/hybrid_retrieval.py
    retrieval_mode: Literal["dense", "lexical", "hybrid"] = "hybrid"
    rrf_k: int = Field(10, ge=0)
    # hybrid: each source's list depth fused, at least k (an item ranked just past k in both lists can win)
    hybrid_candidates: int = Field(100, ge=1)
    # titles written since the last bm25s build that trigger a background rebuild (≈ 7 s for 54,667 titles)
    lexical_rebuild_after: int = Field(2000, ge=1)


class Settings(BaseSettings, ServerSettings, InferenceSettings, IndexSettings, KafkaSettings, RedisSettings,
               LimitsSettings, RankingSettings):
    """Everything configurable, with production-safe defaults for a laptop: one object, its fields grouped.

    The groups are plain models merged here, so every environment name stays ``SHOPRANK_<FIELD>`` and every
    reader keeps ``settings.<field>``; a component that needs one group can say so in its signature."""

    model_config = SettingsConfigDict(env_prefix="SHOPRANK_", extra="ignore")

    @property
    def milvus_target(self) -> str:
        """The Milvus URI the index backend uses: ``milvus_uri``, or Milvus Lite under ``state_dir``."""
        return self.milvus_uri or str(self.state_dir / "milvus.db")

    def open_writes_refusal(self) -> str | None:
        """Why ``shoprank serve`` must not start with these settings (None: it may).

        A deployment with Kafka or Redis is shared; its writes need a real ``SHOPRANK_API_KEY``, not none
        and not a placeholder such as docker-compose's ``change-me``, unless ``SHOPRANK_ALLOW_OPEN_WRITES``
        says open writes are intended."""
        if self.allow_open_writes or not (self.kafka_bootstrap or self.redis_url):
            return None
        if self.api_key is None or not self.api_key.strip():
            return ("SHOPRANK_API_KEY is unset, and Kafka or Redis is configured: set a key, or "
                    "SHOPRANK_ALLOW_OPEN_WRITES=true if anyone may write")
        if self.api_key.strip().lower() in PLACEHOLDER_API_KEYS:
            return (f"SHOPRANK_API_KEY is the placeholder {self.api_key!r}: set a real key, or "
                    "SHOPRANK_ALLOW_OPEN_WRITES=true if anyone may write")
        return None

    @property
    def funnel_dim(self) -> int | None:
        """The cut the ANN index searches when the Matryoshka funnel is on, else None (search embedding_dim)."""
        return self.index_shortlist_dim if 0 < self.index_shortlist_dim < self.embedding_dim else None
