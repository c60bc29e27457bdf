"""Uploaded files: the content-addressed store (store.py), type sniffing (sniff.py), the metadata
table (catalogue.py) and the multipart reader (upload.py)."""
