"""Files: streamed upload into the content-addressed store; download by the uploader and by members
of conversations whose messages attach the file (anyone else: 404)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from starlette.responses import FileResponse

from services.gateway.errors import NotFound, TooLarge
from services.gateway.files import catalogue
from services.gateway.files.sniff import sniff
from services.gateway.files.upload import receive_upload
from services.gateway.problems import UnsupportedMedia
from services.gateway.routes.deps import Caller, Services, reading
from services.gateway.routes.schemas import FileOut
from services.projections import queries

router = APIRouter(tags=["files"])

# Room for the multipart envelope (boundaries, part headers) around the file itself.
MULTIPART_SLACK = 64 * 1024
_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            }
        },
    }
}


@router.post("/files", status_code=201, response_model=FileOut, openapi_extra=_UPLOAD_BODY)
async def upload_file(request: Request, principal: Caller, gw: Services) -> FileOut:
    """201 with the file's id and metadata; 413 beyond the size limit, 415 for a type not accepted."""
    limit = gw.settings.max_file_size
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + MULTIPART_SLACK:
        raise TooLarge("file", limit, int(declared))
    upload = await receive_upload(request, gw.files, limit)
    mime = sniff(upload.head, upload.name)
    if mime is None:
        await gw.files.discard(upload.temp)
        raise UnsupportedMedia("the file's content is not one of the accepted types (docs/chat-api.md)")
    await gw.files.commit(upload.temp, upload.sha256)
    info = catalogue.FileInfo(
        catalogue.file_id_of(principal.user_id, upload.sha256, upload.name),
        upload.name,
        mime,
        upload.size,
        upload.sha256,
        principal.user_id,
        datetime.now(UTC),
    )
    info = await catalogue.record(gw.engine, info)
    return FileOut(file_id=info.file_id, name=info.name, mime=info.mime, size=info.size, sha256=info.sha256)


@router.get(
    "/files/{file_id}",
    response_class=FileResponse,
    # The file's own (sniffed) type, not always octet-stream: found by tests/fuzz/test_fuzz_openapi.py.
    responses={200: {"content": {"*/*": {}}, "description": "the file's bytes, with the type sniffed at upload"}},
)
async def download_file(file_id: str, principal: Caller, gw: Services) -> FileResponse:
    async with reading(gw, principal) as conn:
        info = await catalogue.get(conn, file_id)
        visible = info is not None and (
            info.uploader_id == principal.user_id or await queries.file_visible(conn, principal.user_id, file_id)
        )
    if info is None or not visible or not gw.files.exists(info.sha256):
        raise NotFound("file", file_id)
    return FileResponse(
        gw.files.path_of(info.sha256),
        media_type=info.mime,
        headers={"Content-Disposition": content_disposition(info.name), "X-Content-Type-Options": "nosniff"},
    )


def content_disposition(name: str) -> str:
    """`attachment` with an ASCII fallback name and the exact one in RFC 5987 form when needed."""
    fallback = "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\' else "_" for ch in name)
    header = f'attachment; filename="{fallback}"'
    if fallback != name:
        header += f"; filename*=UTF-8''{quote(name, safe='')}"
    return header
