# The SadTalker API image for GPU nodes (Kubernetes, RunPod). Checkpoints are NOT baked in: mount them at
# /models/checkpoints (a volume or PVC). Outputs go to /data/outputs unless STORAGE_PROVIDER uploads them.
#   docker build -t your-registry/sadtalker-api:1.0.0 .
#   docker run --gpus all -p 8888:8888 -e API_KEYS=... -v $PWD/checkpoints:/models/checkpoints:ro \
#     your-registry/sadtalker-api:1.0.0
# The same image runs the BullMQ dispatcher: `python -m dispatch.worker` (no GPU needed).
#
# CUDA: torch==2.13.0 from PyPI is built against CUDA 13 and brings its own CUDA 13 runtime libraries (the
# nvidia-* wheels), so the image carries exactly one CUDA stack: the wheel's. There is no CUDA base image to
# disagree with it. The host needs an NVIDIA driver >= 580 (CUDA 13) and the NVIDIA container toolkit, which
# mounts the driver into the container. On an older driver torch sees no GPU, and with SADTALKER_DEVICE=auto
# the service refuses to start with that message instead of silently rendering on the CPU.
# The image builds on machines without a GPU; the build prints torch's version and CUDA version and fails
# when the wheel is not a CUDA 13 build.

ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

# --- build: the virtualenv with every requirement (pip and its caches stay in this stage)
FROM ${PYTHON_IMAGE} AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY requirements.txt /tmp/requirements.txt
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install -r /tmp/requirements.txt \
 && sha256sum /tmp/requirements.txt | cut -d' ' -f1 > /opt/venv/.requirements.sha256
# The build check: torch imports (no GPU needed) and is the CUDA 13 build the driver note above is about.
RUN /opt/venv/bin/python -c "import torch; cuda = torch.version.cuda or 'none'; \
print(f'torch {torch.__version__} built for CUDA {cuda}'); \
assert cuda.split('.')[0] == '13', f'expected a CUDA 13 build of torch, got CUDA {cuda}'"

# --- runtime: the same Python, the virtualenv, the code; no compilers, no pip caches
FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
# libgomp1: OpenMP for opencv/scipy; ffmpeg comes with imageio-ffmpeg. Versions follow the pinned base image.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 1000 sadtalker \
 && useradd --uid 1000 --gid 1000 --create-home --shell /usr/sbin/nologin sadtalker \
 && mkdir -p /models/checkpoints /data/outputs \
 && chown -R sadtalker:sadtalker /data/outputs

# The stamp tells run.sh the requirements are installed, so a container never pip-installs at start.
COPY --from=build /opt/venv /opt/venv
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
