#!/usr/bin/env bash
# Installs everything moerl's build, tests and demo need on a fresh machine
# (Debian 12, x86_64): Bazel, the C++ libraries, LibTorch from the pinned
# torch wheel, and the Python oracles the fixture generators use.
# Idempotent and non-interactive: re-running installs only what is missing.
# Versions and the reason for each choice: docs/dependencies.md.
set -euo pipefail

start=$(date +%s)
installed=()
log() { printf 'setup: %s\n' "$*"; }

APT_PACKAGES=(
  bazel-bootstrap            # Bazel 4.2.3, the build
  g++ pkg-config             # compiler; finds the system libraries for Bazel
  protobuf-compiler libprotobuf-dev
  libabsl-dev
  libboost-dev               # Boost.Interprocess (header-only)
  libgtest-dev libgmock-dev libbenchmark-dev
  libyaml-cpp-dev nlohmann-json3-dev libcpp-httplib-dev
  libicu-dev                 # Unicode data for the tokenizer
  clang libclang-rt-14-dev   # libFuzzer targets (--config=fuzz)
  python3 python3-pip
  curl                       # the pipeline's /health_generate checks of its servers
)

# Exact pins; torch 2.11.0 matches the GPU machines' LibTorch.
PIP_PACKAGES=(
  torch==2.11.0
  numpy==2.4.6
  safetensors==0.8.0
  tokenizers==0.23.3
  transformers==5.24.0
  math-verify==0.9.0
  matplotlib==3.10.8         # the pipeline's report plots
  tensorboard==2.20.0        # reads the trainer's event files in a test
)

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi

missing_apt=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing_apt+=("$pkg")
done
if [[ ${#missing_apt[@]} -gt 0 ]]; then
  log "apt: installing ${missing_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing_apt[@]}" >/dev/null
  installed+=("${missing_apt[@]}")
else
  log "apt: all ${#APT_PACKAGES[@]} packages present"
fi

PYTHON="${MOERL_PYTHON:-python3}"
frozen=$("$PYTHON" -m pip list --format=freeze --disable-pip-version-check 2>/dev/null | tr 'A-Z_' 'a-z-' || true)
pip_has() {  # pip_has name==version; a local suffix (2.11.0+cu130) counts
  local want
  want=$(tr 'A-Z_' 'a-z-' <<<"$1")
  grep -qE "^${want//./\\.}(\+.*)?$" <<<"$frozen"
}
missing_pip=()
for spec in "${PIP_PACKAGES[@]}"; do
  pip_has "$spec" || missing_pip+=("$spec")
done
if [[ ${#missing_pip[@]} -gt 0 ]]; then
  log "pip: installing ${missing_pip[*]}"
  pip_flags=(--quiet --disable-pip-version-check)
  # Debian's own python3 refuses system-wide pip installs without this.
  if "$PYTHON" -c 'import sys; sys.exit(0 if sys.prefix == "/usr" else 1)'; then
    pip_flags+=(--break-system-packages)
  fi
  "$PYTHON" -m pip install "${pip_flags[@]}" "${missing_pip[@]}"
  installed+=("${missing_pip[@]}")
else
  log "pip: all ${#PIP_PACKAGES[@]} packages present"
fi

# AReaL itself, the oracle for trainer/advantages and trainer/ppo_loss
# (//trainer:areal_oracle_test). `--no-deps --target` into a folder of its own:
# a plain install would pull another torch over the pinned one. These are the
# modules `areal.trainer.ppo.actor` and `areal.utils.data` import beyond the
# packages above (found by importing with only those on the path).
AREAL_ORACLE_DIR="${MOERL_AREAL_ORACLE:-${HOME}/.cache/moerl/areal-oracle}"
AREAL_ORACLE_PACKAGES=(
  areal==1.0.4
  aiofiles==25.1.0 aiohappyeyeballs==2.7.1 aiohttp==3.14.5 aiosignal==1.4.0
  antlr4-python3-runtime==4.9.3 attrs==26.1.0 blinker==1.9.0 certifi==2026.10.19.post1
  colorlog==6.12.0 einops==0.8.2 flask==3.1.3 frozenlist==1.8.0 httpx==0.29.0
  hydra-core==1.3.8 itsdangerous==2.2.0 jiter==0.19.0 jsonschema==4.26.0
  jsonschema-specifications==2025.9.1 lark==1.3.1 llvmlite==0.50.0 msgpack==1.2.4
  multidict==7.2.1 numba==0.68.1 omegaconf==2.4.0 openai==3.57.0 orjson==3.13.0
  pillow==13.0.0 propcache==0.5.4 protobuf==7.36.2 ray==2.60.0 referencing==0.37.0
  requests==2.34.2 rpds-py==2026.9.1 sniffio==1.3.1 tenacity==9.2.1 torchdata==0.11.0
  urllib3==2.8.0 uvloop==0.23.0 werkzeug==3.1.9 yarl==1.25.1
)
areal_stamp="${AREAL_ORACLE_DIR}/.moerl-packages"
if [[ -f "$areal_stamp" && "$(cat "$areal_stamp")" == "${AREAL_ORACLE_PACKAGES[*]}" ]]; then
  log "areal oracle: present in ${AREAL_ORACLE_DIR}"
else
  log "areal oracle: installing ${#AREAL_ORACLE_PACKAGES[@]} packages into ${AREAL_ORACLE_DIR}"
  rm -rf "${AREAL_ORACLE_DIR}.tmp"
  "$PYTHON" -m pip install --quiet --disable-pip-version-check --no-deps \
    --target "${AREAL_ORACLE_DIR}.tmp" "${AREAL_ORACLE_PACKAGES[@]}"
  rm -rf "$AREAL_ORACLE_DIR"
  mv "${AREAL_ORACLE_DIR}.tmp" "$AREAL_ORACLE_DIR"
  echo "${AREAL_ORACLE_PACKAGES[*]}" > "$areal_stamp"
  installed+=("areal-oracle")
fi

# Ray for `scheduler.type=ray` (tools/ray_launch/ray_launch.py, the only
# user; //tests:pipeline_ray_test). Into a folder of its own, as the AReaL
# oracle: nothing here may replace the pinned packages. Ray's own
# dependencies are pinned too (`--no-deps`); about 260 MB, about a minute.
RAY_ENV_DIR="${MOERL_RAY_ENV:-${HOME}/.cache/moerl/ray-env}"
RAY_ENV_PACKAGES=(
  ray==2.60.0
  attrs==26.1.0 certifi==2026.10.19.post1 charset-normalizer==3.5.3 click==8.5.1
  filelock==4.3.2 idna==3.20 jsonschema==4.26.0 jsonschema-specifications==2025.9.1
  msgpack==1.2.4 packaging==26.4 protobuf==7.36.2 pyyaml==6.0.4 referencing==0.37.0
  requests==2.34.2 rpds-py==2026.9.1 typing-extensions==4.16.0 urllib3==2.8.0
)
ray_stamp="${RAY_ENV_DIR}/.moerl-packages"
if [[ -f "$ray_stamp" && "$(cat "$ray_stamp")" == "${RAY_ENV_PACKAGES[*]}" ]]; then
  log "ray: present in ${RAY_ENV_DIR}"
else
  log "ray: installing ${#RAY_ENV_PACKAGES[@]} packages into ${RAY_ENV_DIR}"
  rm -rf "${RAY_ENV_DIR}.tmp"
  "$PYTHON" -m pip install --quiet --disable-pip-version-check --no-deps \
    --target "${RAY_ENV_DIR}.tmp" "${RAY_ENV_PACKAGES[@]}"
  rm -rf "$RAY_ENV_DIR"
  mv "${RAY_ENV_DIR}.tmp" "$RAY_ENV_DIR"
  echo "${RAY_ENV_PACKAGES[*]}" > "$ray_stamp"
  installed+=("ray-env")
fi

# The build's repository rules look for these; fail here, not in Bazel.
command -v bazel >/dev/null || { log "bazel is not on PATH after install" >&2; exit 1; }
command -v protoc >/dev/null || { log "protoc is not on PATH after install" >&2; exit 1; }
"$PYTHON" -c 'import importlib.util as u, sys; sys.exit(0 if u.find_spec("torch") else 1)' ||
  { log "python3 cannot find the torch package after install" >&2; exit 1; }

mkdir -p "${HOME}/.cache/moerl/bazel-disk"

elapsed=$(( $(date +%s) - start ))
if [[ ${#installed[@]} -gt 0 ]]; then
  log "installed ${#installed[@]}: ${installed[*]}"
else
  log "nothing to install"
fi
log "bazel-bootstrap $(dpkg-query -W -f='${Version}' bazel-bootstrap), protoc $(protoc --version | awk '{print $2}'), $(grep -E '^torch==' <<<"$frozen" || echo "torch (just installed)")"
log "done in ${elapsed}s"
