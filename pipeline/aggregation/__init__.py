"""aggregation part of the pipeline."""
