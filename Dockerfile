# The MSM worker image: the `msm` CLI and the pipeline, for users with Docker.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY pipeline ./pipeline
RUN pip install .
COPY schemas ./schemas
COPY examples ./examples
COPY topology.yaml ./topology.yaml
ENV MSM_TOPOLOGY=/app/topology.yaml PYTHONPATH=/app
ENTRYPOINT ["msm"]
CMD ["--help"]
