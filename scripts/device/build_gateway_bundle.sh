#!/bin/bash
# Builds doze-gateway, the stand-in worker and the gateway load generator here and bundles them with the libraries
# the GPU machine lacks into h100/gw (git-ignored), for scripts/device/gateway_check.sh there.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
build=${BUILD_DIR:-build}
cmake --build "$build" -j2 --target doze-gateway doze-fake-worker doze_gateway_load doze_loopback_send_bench doze_echo_server
rm -rf h100/gw
../shared/bin/bundle-libs h100/gw "$build/bin/doze-gateway" "$build/tests/doze-fake-worker" \
  "$build/bin/doze_gateway_load" "$build/bin/doze_loopback_send_bench" "$build/bin/doze_echo_server"
