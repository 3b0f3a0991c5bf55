# The callflow controller. Renders the prompts (espeak-ng) into the mounted sounds/ at start.
FROM python:3.11-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends espeak-ng sox \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY callflow ./callflow
RUN pip install --no-cache-dir .
CMD ["sh", "-c", "callflow prompts render && callflow run"]
