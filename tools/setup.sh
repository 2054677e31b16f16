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
