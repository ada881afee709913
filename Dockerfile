# One image for the three services; the command picks the service.
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
RUN useradd --create-home --uid 10001 vtp
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
COPY vtp ./vtp
RUN pip install .
USER vtp
# e.g. `python -m services.claims`; see docker-compose.yml
CMD ["python", "-m", "services.cards"]
