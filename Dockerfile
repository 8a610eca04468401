# CPU image of the marketplace: `docker run IMAGE web|worker|demo|migrate` (docker/entrypoint.sh).
# Everything comes from package registries at build time: Debian's python image, PyPI, and PyTorch's
# CPU wheel index for torch alone (PyPI's Linux torch wheels pull the CUDA stack: gigabytes).
# No model or dataset is downloaded at build or run time; the demo trains its own tiny base model.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=config.settings.base \
    ARTIFACTS_DIR=/data/artifacts \
    HF_HUB_OFFLINE=1 \
    NUMBA_CACHE_DIR=/app/var/numba

WORKDIR /app
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
COPY requirements.txt .
# torch first, at the version requirements.txt pins, from the CPU index; the rest from PyPI
# (the CPU build, e.g. 2.13.0+cpu, satisfies the torch==2.13.0 pin, so it is not replaced).
RUN pip install --index-url "$TORCH_INDEX_URL" "$(grep -E '^torch==' requirements.txt)" \
 && pip install -r requirements.txt

COPY . .
RUN useradd --create-home --uid 10001 --user-group app \
 && mkdir -p /data/artifacts /app/var \
 && chown -R app:app /data /app/var
USER 10001:10001

# /data is the artifact store every worker must share (a volume, NFS, ...); var/ holds the embedded
# default's SQLite files when no DATABASE_URL / CELERY_BROKER_URL is given.
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=20s --start-period=120s --retries=3 CMD ["python", "docker/healthcheck.py"]
ENTRYPOINT ["docker/entrypoint.sh"]
CMD ["web"]
