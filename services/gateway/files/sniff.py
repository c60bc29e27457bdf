"""The type of an uploaded file, from its first bytes (never from the client's name or header).

Only the types listed here are accepted (docs/chat-api.md); anything else is None and the upload is
refused with 415. Text is accepted when the sample is valid UTF-8 without control characters other
than tab, CR, LF and form feed; it is text/csv when the file's name ends in .csv.
"""

from __future__ import annotations

# How much of the file is looked at: enough for every signature below and a ZIP's first entry name.
SNIFF_BYTES = 8192

_PREFIXES: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "application/x-ole-storage"),  # legacy .doc/.xls/.ppt
    (b"Rar!\x1a\x07", "application/vnd.rar"),
    (b"7z\xbc\xaf\x27\x1c", "application/x-7z-compressed"),
    (b"\x1f\x8b", "application/gzip"),
    (b"ID3", "audio/mpeg"),
    (b"OggS", "audio/ogg"),
    (b"\x1a\x45\xdf\xa3", "video/webm"),
)
# A ZIP's first entry tells an Office Open XML document from a plain archive.
_OOXML = (
    (b"word/", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    (b"xl/", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    (b"ppt/", "application/vnd.openxmlformats-officedocument.presentationml.presentation"),
)
_TEXT_CONTROLS = frozenset(b"\t\n\r\x0c")


def sniff(head: bytes, name: str = "") -> str | None:
    """The MIME type of content starting with `head` (up to SNIFF_BYTES), or None when not accepted.
    `name` only chooses between text/csv and text/plain for content that is text either way."""
    for prefix, mime in _PREFIXES:
        if head.startswith(prefix):
            return mime
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio/wav"
    if head[4:8] == b"ftyp":
        return "video/mp4"
    if len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06:
        return "audio/mpeg"  # an MP3 frame sync without an ID3 tag
    if head.startswith(b"PK\x03\x04"):
        return _zip_kind(head)
    return _text_kind(head, name)


def _zip_kind(head: bytes) -> str:
    if b"[Content_Types].xml" in head:
        for marker, mime in _OOXML:
            if marker in head:
                return mime
    return "application/zip"


def _text_kind(head: bytes, name: str) -> str | None:
    if not head:
        return None
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as e:
        # The sample may end inside a multi-byte character; only a cut at the very end is forgiven.
        if e.start < len(head) - 3:
            return None
        text = head[: e.start].decode("utf-8")
    if any(ord(ch) < 32 and ord(ch) not in _TEXT_CONTROLS for ch in text) or "\x7f" in text:
        return None
    return "text/csv" if name.lower().endswith(".csv") else "text/plain"
