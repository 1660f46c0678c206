"""/v1/items/{item_id}: read what a replica holds (GET) and the write path (PUT/DELETE, applied in process,
or published with Kafka)."""

from fastapi import APIRouter, Response

from service.api.deps import ApiKeyRequired, RuntimeDep
from service.api.schemas import ItemResponse, ItemWriteResponse, RequestModels
from service.errors import InvalidInput, NotFound
from service.replication import WriteReceipt, item_writer
from service.store.base import ItemDocument

WRITE_ERRORS = {202: {"model": ItemWriteResponse, "description": "published to the item stream (Kafka configured); "
                                                                 "searchable once a replica applies it"},
                401: {"description": "X-API-Key missing or wrong"},
                409: {"description": "version not newer than the stored one"}}


def _answer(receipt: WriteReceipt, response: Response) -> ItemWriteResponse:
    response.status_code = 200 if receipt.status == "applied" else 202
    return ItemWriteResponse(item_id=receipt.item_id, version=receipt.version, status=receipt.status)


def router(models: RequestModels) -> APIRouter:
    api = APIRouter(tags=["items"])
    ItemWrite, ItemIdPath, VersionQuery = models.ItemWrite, models.ItemIdPath, models.VersionQuery

    @api.get("/v1/items/{item_id}", response_model=ItemResponse,
             responses={404: {"description": "no such item, or it was deleted"}})
    def get_item(item_id: ItemIdPath, runtime: RuntimeDep) -> ItemResponse:
        """The stored document plus ``searchable_version``: the version this replica's index holds. No model runs.

        A deleted item answers 404 like an unknown one (its document is gone, and retrieval no longer
        returns it); a read, so no API key is needed.
        """
        doc = runtime.store.get_items([item_id])[0]
        if doc is None:
            raise NotFound(f"item {item_id!r} not found (never written, or deleted)")
        return ItemResponse(**doc.model_dump(), searchable_version=runtime.searchable.searchable_version(item_id))

    @api.put("/v1/items/{item_id}", response_model=ItemWriteResponse, dependencies=[ApiKeyRequired],
             responses=WRITE_ERRORS)
    def put_item(item_id: ItemIdPath, body: ItemWrite, runtime: RuntimeDep, response: Response) -> ItemWriteResponse:
        """Create or replace an item at a newer version; searchable when this returns (embedded)."""
        if body.item_id is not None and body.item_id != item_id:
            raise InvalidInput(f"item_id: body says {body.item_id!r} but the path says {item_id!r}")
        doc = ItemDocument(**(body.model_dump() | {"item_id": item_id}))
        return _answer(item_writer(runtime).upsert(doc), response)

    @api.delete("/v1/items/{item_id}", response_model=ItemWriteResponse, dependencies=[ApiKeyRequired],
                responses=WRITE_ERRORS)
    def delete_item(item_id: ItemIdPath, version: VersionQuery, runtime: RuntimeDep,
                    response: Response) -> ItemWriteResponse:
        """Delete an item at a newer version (a tombstone keeps the version, so older writes stay refused)."""
        return _answer(item_writer(runtime).delete(item_id, version), response)

    return api
