# The scoring service: `segments serve` on port 8000, as a non-root user.
#
#   docker build -t customer-segments .
#   docker run -p 8000:8000 -v segments-data:/data \
#     -e SEGMENTS_API_KEYS='{"crm-key-1": ["score"], "ops": ["score", "read"]}' \
#     -e MLFLOW_TRACKING_URI=http://mlflow:5000 customer-segments
#
# Without MLFLOW_TRACKING_URI the embedded registry in /data (SEGMENTS_HOME) is used; the verified
# local copy of the last good model is kept there too, so mount /data to keep it across restarts.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
WORKDIR /src
# Dependencies first, so a code change does not reinstall them.
COPY pyproject.toml README.md ./
RUN mkdir feature_store models pipelines service \
 && /opt/venv/bin/pip install '.[track,explain,serve]' \
 && /opt/venv/bin/pip uninstall -y customer-segments
COPY feature_store feature_store
COPY models models
COPY pipelines pipelines
COPY service service
RUN /opt/venv/bin/pip install --no-deps .

FROM python:3.11-slim AS runtime
# libgomp: the OpenMP runtime scikit-learn's wheels link against.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 --shell /usr/sbin/nologin segments \
 && mkdir /data && chown segments:segments /data
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    SEGMENTS_HOME=/data \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER segments
WORKDIR /home/segments
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health/live', timeout=4).status != 200)"]
CMD ["segments", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
