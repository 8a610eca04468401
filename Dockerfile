# CPU image: `docker run IMAGE web|worker|demo`. Everything comes from package registries;
# no model or dataset is downloaded at build or run time.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    DJANGO_SETTINGS_MODULE=config.settings.base ARTIFACTS_DIR=/data/artifacts

WORKDIR /app
COPY requirements.txt .
# Point PIP_EXTRA_INDEX_URL (build arg) at a CPU-only torch index to keep CUDA wheels out.
ARG PIP_EXTRA_INDEX_URL=
RUN pip install -r requirements.txt

COPY . .
RUN useradd --create-home --uid 10001 app && mkdir -p /data /app/var && chown -R app /data /app/var
USER app

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s CMD \
    python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/login/', timeout=4)" || exit 1
ENTRYPOINT ["/app/docker-entrypoint.sh"]
CMD ["web"]
