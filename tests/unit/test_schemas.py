"""Request limits come from settings, and every validation failure maps to one clear error shape.

A small app with the real request models and error handlers (no models loaded) checks the
HTTP side: 400 for malformed JSON, 413 for too many candidates, 422 naming the field, and the
domain-error → status table with ``Retry-After`` on 503s.
"""


import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError

from service import errors as domain
from service.api.deps import require_api_key
from service.api.errors import install_error_handlers
from service.api.schemas import MAX_VERSION, request_models
from service.settings import Settings

SETTINGS = Settings(max_query_chars=20, max_text_chars=30, max_k=5, max_candidates=3, max_item_id_chars=8)
MODELS = request_models(SETTINGS)


def candidates(n: int) -> list[dict]:
    return [{"id": str(i), "title": f"item {i}"} for i in range(n)]


def test_limits_follow_settings() -> None:
    MODELS.RankRequest(query="q" * 20, items=candidates(3))
    MODELS.RetrieveRequest(query="drill", k=5)
    for bad in ({"query": "q" * 21, "items": candidates(1)}, {"query": "q", "items": candidates(4)},
                {"query": "   ", "items": candidates(1)}, {"query": "q", "items": []},
                {"query": "q", "items": [{"id": "123456789", "title": "x"}]},
                {"query": "q", "items": [{"id": "1", "title": "t" * 31}]}):
        with pytest.raises(ValidationError):
            MODELS.RankRequest(**bad)
    for k in (0, 6, -1):
        with pytest.raises(ValidationError):
            MODELS.RetrieveRequest(query="drill", k=k)


def test_text_is_stripped_and_nan_typos_blanks_and_booleans_refused() -> None:
    assert MODELS.RetrieveRequest(query="  drill ").query == "drill"
    with pytest.raises(ValidationError, match="finite"):
        MODELS.RankRequest(query="q", items=candidates(1), min_relevance=float("nan"))
    with pytest.raises(ValidationError, match="Extra inputs"):
        MODELS.RetrieveRequest(query="q", kk=3)
    with pytest.raises(ValidationError, match=r"at least 1 character|pattern"):
        MODELS.RetrieveRequest(query=" \t ")
    for field, value in (("k", True), ("mode", 1)):
        with pytest.raises(ValidationError, match=field):
            MODELS.RetrieveRequest(query="q", **{field: value})
    with pytest.raises(ValidationError, match="not true/false"):
        MODELS.RankRequest(query="q", items=candidates(1), min_relevance=True)
    assert MODELS.RetrieveRequest(query="q", k=5.0).k == 5  # a JSON number with no fraction is an integer
    repeated = MODELS.RankRequest(query="q", items=[{"id": "1", "title": "a"}, {"id": "1", "title": "b"}])
    assert [c.title for c in repeated.items] == ["a", "b"]  # a repeated id is a candidate of its own
    with pytest.raises(ValidationError, match="exactly one"):
        MODELS.KeyphraseRequest(item={"title": "drill"}, item_id="1")


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = FastAPI()
    install_error_handlers(app)
    RankRequest = MODELS.RankRequest

    @app.post("/rank")
    def rank(body: RankRequest) -> dict:  # a per-app class: this module must not postpone annotations
        return {"n": len(body.items)}

    @app.get("/raise/{name}")
    def raise_error(name: str) -> None:
        error = getattr(domain, name)
        raise error("boom", retry_after_s=7) if issubclass(error, domain.DependencyUnavailable) else error("boom")

    return TestClient(app)


def test_valid_request_passes(client: TestClient) -> None:
    assert client.post("/rank", json={"query": "q", "items": candidates(3)}).json() == {"n": 3}
    for depth in (0, 3, None):  # 0 = first phase only, max_candidates = every candidate, None = the default
        assert client.post("/rank", json={"query": "q", "items": candidates(3), "rerank_depth": depth}).json() == {"n": 3}


@pytest.mark.parametrize(("body", "status", "code", "needle"), [
    ('{"query": "q", "items": [', 400, "malformed_json", "not valid JSON"),
    ({"query": "q", "items": candidates(4)}, 413, "payload_too_large", "items: 4 entries, at most 3"),
    ({"query": "", "items": candidates(1)}, 422, "invalid_input", "query:"),
    ({"query": "q", "items": [{"id": 1, "title": "x"}]}, 422, "invalid_input", "items.0.id"),
    ({"query": "q", "items": candidates(1), "weights": {"ctr": "lots"}}, 422, "invalid_input", "weights.ctr"),
    ({"query": "q"}, 422, "invalid_input", "items: Field required"),
    ([1, 2], 422, "invalid_input", "body"),
    ({"query": "q", "items": candidates(1), "rerank_depth": -1}, 422, "invalid_input",
     "rerank_depth: Input should be greater than or equal to 0"),
    ({"query": "q", "items": candidates(1), "rerank_depth": 4}, 422, "invalid_input",
     "rerank_depth: Input should be less than or equal to 3"),  # above max_candidates
    ({"query": "q", "items": candidates(1), "rerank_depth": 1.5}, 422, "invalid_input", "rerank_depth"),
])
def test_bad_requests_get_one_error_shape(client: TestClient, body, status: int, code: str, needle: str) -> None:
    kwargs = {"content": body, "headers": {"content-type": "application/json"}} if isinstance(body, str) else {"json": body}
    response = client.post("/rank", **kwargs)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and needle in error["message"]


@pytest.mark.parametrize(("name", "status"), [
    ("InvalidInput", 422), ("PayloadTooLarge", 413), ("NotFound", 404), ("UnknownProfile", 422),
    ("StaleVersion", 409), ("Unauthorized", 401), ("DependencyUnavailable", 503), ("NotReady", 503)])
def test_domain_errors_map_to_statuses(client: TestClient, name: str, status: int) -> None:
    response = client.get(f"/raise/{name}")
    assert response.status_code == status
    assert response.json() == {"error": {"code": getattr(domain, name).code, "message": "boom"}}
    assert response.headers.get("retry-after") == ("7" if status == 503 else None)


def test_unknown_route_uses_the_error_shape(client: TestClient) -> None:
    response = client.get("/nowhere")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_api_key_is_checked_only_when_configured() -> None:
    require_api_key(Settings(api_key=None), x_api_key=None)
    require_api_key(Settings(api_key="k"), x_api_key="k")
    for given in (None, "", "K", "k "):
        with pytest.raises(domain.Unauthorized):
            require_api_key(Settings(api_key="k"), x_api_key=given)


def test_item_writes_refuse_versions_past_int64_and_lone_surrogates() -> None:
    """Found by schemathesis (issue 20): both were accepted and then failed inside the store with a 500."""
    MODELS.ItemWrite(version=MAX_VERSION, title="drill", attributes={"colour": "rot – grün"})
    with pytest.raises(ValidationError, match="less than or equal"):
        MODELS.ItemWrite(version=MAX_VERSION + 1, title="drill")
    for field, value in (("title", "m\ud907"), ("category", "\udc07x"), ("attributes", {"k": ["x\udc07"]}),
                         ("attributes", {"\ud800": 1})):
        with pytest.raises(ValidationError, match=field):
            MODELS.ItemWrite(version=1, **({"title": "drill"} | {field: value}))
    with pytest.raises(ValidationError, match="attributes: text must be valid Unicode"):
        MODELS.ItemWrite(version=1, title="drill", attributes={"k": {"nested": "\ud907"}})
