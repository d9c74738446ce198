"""alerts part of the pipeline."""
