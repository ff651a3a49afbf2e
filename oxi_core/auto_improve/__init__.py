"""Auto-improve: outside ideas (sources are plugins) -> ranked, judged, deduplicated roadmap
proposals, staged for the operator, with a health check of its own (issue 13).

It runs on a schedule (``oxi auto-improve scan``), never inside the dispatch path, and imports
nothing heavy at import time: the embedding model, numpy and sqlite-vec load inside a scan.
"""
