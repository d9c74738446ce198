"""Where results leave the pipeline: the ClickHouse writer and its migrations."""
