"""Provenance of generated images: invisible watermark (``watermark``), AI-generated
metadata (``metadata``), C2PA content credentials (``c2pa``), the writer every generated
image goes through (``marking``) and the reader (``verify``)."""
