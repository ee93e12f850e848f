# One image for every service in docker-compose.yml: the Ray head, the GPU
# workers, the driver and optuna-dashboard. torch==2.13.0 from PyPI is the
# CUDA build on Linux x86_64, so the same pin serves CPU and GPU nodes.
FROM python:3.11-slim
WORKDIR /app
ENV RAY_USAGE_STATS_ENABLED=0 PYTHONUNBUFFERED=1
COPY pyproject.toml constraints.txt README.md ./
COPY study study
COPY workers workers
COPY db db
COPY records records
RUN pip install --no-cache-dir -c constraints.txt ".[report,digits,postgres,dashboard]"
COPY examples examples
