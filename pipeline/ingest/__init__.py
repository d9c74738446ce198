"""ingest part of the pipeline."""
