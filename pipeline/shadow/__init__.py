"""shadow part of the pipeline."""
