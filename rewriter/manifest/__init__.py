"""The manifest transform's parts, pure and without network: the stream split into
documents (stream), the YAML read as Kubernetes reads it (document, prefilter), which
fields hold images (fields, with the catalogue of custom resources), the byte-exact edits
(edit) and their check (readback), and the scan for image-like values no table claims
(unclaimed). rewriter/render.py puts them together."""
