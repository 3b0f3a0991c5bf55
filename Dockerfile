# The callflow controller, installed from its wheel (non-editable: what users install).
# At start it renders the prompts (espeak-ng) into /app/sounds — the folder docker-compose
# shares with Asterisk — then runs the ARI app, the FastAGI server and /health.
# tests/integration/test_install.py installs the same wheel in a fresh venv and runs this CMD.
FROM python:3.11-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends espeak-ng sox \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY callflow ./callflow
COPY sounds/prompts.yaml ./sounds/prompts.yaml
RUN pip install --no-cache-dir . && rm -rf /src
WORKDIR /app
ENV CALLFLOW_SOUNDS_DIR=/app/sounds
CMD ["sh", "-c", "callflow prompts render && callflow run"]
