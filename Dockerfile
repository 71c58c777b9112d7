# The SadTalker API image for GPU nodes (Kubernetes, RunPod). Checkpoints are NOT baked in: mount them at
# /models/checkpoints (a volume or PVC). Outputs go to /data/outputs unless STORAGE_PROVIDER uploads them.
#   docker build -t your-registry/sadtalker-api:latest .
#   docker run --gpus all -p 8888:8888 -e API_KEYS=... -v $PWD/checkpoints:/models/checkpoints:ro \
#     your-registry/sadtalker-api:latest
# The same image runs the BullMQ dispatcher: `python -m dispatch.worker` (no GPU needed).
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu22.04

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# python3.11 from the deadsnakes PPA (22.04 ships 3.10); ffmpeg comes with imageio-ffmpeg.
RUN apt-get update \
 && apt-get install -y --no-install-recommends software-properties-common ca-certificates gpg-agent \
 && add-apt-repository -y ppa:deadsnakes/ppa \
 && apt-get update \
 && apt-get install -y --no-install-recommends python3.11 python3.11-venv libgomp1 \
 && apt-get purge -y software-properties-common gpg-agent && apt-get autoremove -y \
 && rm -rf /var/lib/apt/lists/*

# Linux wheels of torch==2.13.0 from PyPI are the CUDA build: the same pin as on CPU machines.
COPY requirements.txt /app/requirements.txt
# The stamp tells run.sh the requirements are installed, so a pod never pip-installs at start.
RUN python3.11 -m venv /opt/venv \
 && /opt/venv/bin/pip install -r /app/requirements.txt \
 && sha256sum /app/requirements.txt | cut -d' ' -f1 > /opt/venv/.requirements.sha256

RUN groupadd --gid 1000 sadtalker \
 && useradd --uid 1000 --gid 1000 --create-home --shell /usr/sbin/nologin sadtalker \
 && mkdir -p /models/checkpoints /data/outputs \
 && chown -R sadtalker:sadtalker /data/outputs

WORKDIR /app
COPY --chown=sadtalker:sadtalker . /app
RUN chmod +x /app/run.sh

ENV SADTALKER_VENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    API_PORT=8888 \
    SADTALKER_CHECKPOINT_DIR=/models/checkpoints \
    SADTALKER_OUTPUT_DIR=/data/outputs

USER 1000:1000
VOLUME ["/models/checkpoints", "/data/outputs"]
EXPOSE 8888

HEALTHCHECK --interval=30s --timeout=5s --start-period=300s \
  CMD ["/opt/venv/bin/python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('API_PORT', '8888')}/healthz\", timeout=4)"]

CMD ["/app/run.sh"]
