# The camcount pipeline image: every worker is `camcount <command>` in this image.
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY pipeline ./pipeline
COPY schemas ./schemas
COPY models ./models
COPY config ./config
RUN pip install --no-cache-dir .
ENTRYPOINT ["camcount"]
