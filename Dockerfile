# The adapter-gateway image. It serves the gateway (the default command) and, in the
# deploy/overlays/cpu-demo pool, vLLM on CPU with the bundled SmolLM2-135M-Instruct,
# converted at build time into /models (nothing is fetched from a model hub at run time).
#   docker build -t adapter-gateway:latest .              (ENGINE=gpu for a CUDA vLLM)
# The GPU pool (deploy/overlays/gpu) runs the upstream vllm/vllm-openai image instead.
# Packages come from requirements/$ENGINE.lock, pinned and hash-checked: the versions the test
# suite ran, without its tools. Pin the base image by digest for a release (docs/deploy.md).
FROM python:3.11-slim-bookworm

ARG ENGINE=cpu
ENV PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    VLLM_NO_USAGE_STATS=1 \
    PATH=/app/.venv/bin:$PATH

WORKDIR /app
COPY pyproject.toml README.md ./
COPY requirements ./requirements
COPY scripts ./scripts
COPY gateway ./gateway
COPY config ./config
# The CPU build of torch comes from PyTorch's index (checked against the lock's hash); the
# GPU lock takes torch from PyPI, so that index must not be offered there.
RUN if [ "$ENGINE" = cpu ]; then export TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu; fi \
    && ENGINE=$ENGINE scripts/setup.sh --runtime \
    && .venv/bin/adapter-gateway prepare-model --target /models/SmolLM2-135M-Instruct \
    && rm -rf /root/.cache

# The writable places (staging, claims, rollouts) are volumes in deploy/; the image
# itself runs read-only as an unprivileged user.
RUN useradd --uid 10001 --no-create-home gateway
USER 10001
EXPOSE 8000
ENTRYPOINT ["adapter-gateway"]
CMD ["serve", "--config", "/etc/adapter-gateway/gateway.yaml"]
