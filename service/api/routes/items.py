"""PUT/DELETE /v1/items/{item_id}: the write path (applied in process, or published with Kafka)."""

from fastapi import APIRouter, Response

from service.api.deps import ApiKeyRequired, RuntimeDep
from service.api.schemas import ItemWriteResponse, RequestModels
from service.errors import InvalidInput
from service.replication import WriteReceipt, item_writer
from service.store.base import ItemDocument

WRITE_ERRORS = {401: {"description": "X-API-Key missing or wrong"},
                409: {"description": "version not newer than the stored one"}}


def _answer(receipt: WriteReceipt, response: Response) -> ItemWriteResponse:
    response.status_code = 200 if receipt.status == "applied" else 202
    return ItemWriteResponse(item_id=receipt.item_id, version=receipt.version, status=receipt.status)


def router(models: RequestModels) -> APIRouter:
    api = APIRouter(tags=["items"], dependencies=[ApiKeyRequired], responses=WRITE_ERRORS)
    ItemWrite, ItemIdPath, VersionQuery = models.ItemWrite, models.ItemIdPath, models.VersionQuery

    @api.put("/v1/items/{item_id}", response_model=ItemWriteResponse)
    def put_item(item_id: ItemIdPath, body: ItemWrite, runtime: RuntimeDep, response: Response) -> ItemWriteResponse:
        """Create or replace an item at a newer version; searchable when this returns (embedded)."""
        if body.item_id is not None and body.item_id != item_id:
            raise InvalidInput(f"item_id: body says {body.item_id!r} but the path says {item_id!r}")
        doc = ItemDocument(**(body.model_dump() | {"item_id": item_id}))
        return _answer(item_writer(runtime).upsert(doc), response)

    @api.delete("/v1/items/{item_id}", response_model=ItemWriteResponse)
    def delete_item(item_id: ItemIdPath, version: VersionQuery, runtime: RuntimeDep,
                    response: Response) -> ItemWriteResponse:
        """Delete an item at a newer version (a tombstone keeps the version, so older writes stay refused)."""
        return _answer(item_writer(runtime).delete(item_id, version), response)

    return api
