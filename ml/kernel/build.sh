#!/usr/bin/env bash
# Builds the fused training kernel from gru.c:
#   gru.wasm                the WebAssembly build, committed: what every install runs
#   build/gru-native.node   optional, this machine only (not committed): the same source
#                           compiled for the host CPU as a Node addon, preferred when present
#
#   build.sh            both (each one skipped, with a note, when its compiler is missing):
#                       npm run build:kernel, after a change to the kernel's sources
#   build.sh --native   only the addon: npm run build:kernel-native, on any machine with a C
#                       compiler, leaves the committed gru.wasm alone
#   build.sh --wasm     only gru.wasm
#   build.sh --profile  build/gru-profile.wasm and build/gru-profile-native.node: the same
#                       kernel with per-phase timers (-DKERNEL_PROFILE), for
#                       npm run bench:train -- --profile; never committed, never loaded otherwise
#   build.sh --check    rebuild gru.wasm into a temporary file and verify it is byte-for-byte
#                       the committed one (CI runs this where clang is installed)
#
# The committed gru.wasm was built with Debian clang 14.0.6 and LLD 14.0.6 (Debian 12's
# `apt-get install -y clang lld`). Another clang version may well emit different (equally valid)
# bytes: the check then fails and says which version it used.
#
# WebAssembly flags, and why:
#   --target=wasm32 -nostdlib -Wl,--no-entry   a library module: no libc, no main
#   -msimd128        the kernel's 128-bit vectors (wasm_simd128.h)
#   -mbulk-memory    memset/memcpy become memory.fill/copy (else wasm-ld misses them)
#   -O3 -ffp-contract=off   no fused multiply-add anywhere: results stay bit-reproducible
#   -Wl,--strip-debug, -ffile-prefix-map   no DWARF and no paths of this machine in the bytes
set -euo pipefail
cd "$(dirname "$0")"
EXPECTED_CLANG="14.0.6"
CLANG="${CLANG:-clang}"
CC_NATIVE="${CC:-cc}"
WASM_FLAGS=(--target=wasm32 -nostdlib -O3 -msimd128 -mbulk-memory -ffp-contract=off -std=c11 -Wall -Wextra -Werror
  -ffile-prefix-map="$PWD"=. -Wl,--no-entry -Wl,--strip-debug -Wl,--initial-memory=1048576)

have() { command -v "$1" >/dev/null 2>&1; }

build_wasm() { # $1: output file
  "$CLANG" "${WASM_FLAGS[@]}" -o "$1" gru.c
}

wasm() {
  if ! have "$CLANG"; then
    echo "build.sh: $CLANG not found, gru.wasm left as committed (apt-get install -y clang lld to rebuild it)"
    return 0
  fi
  build_wasm gru.wasm
  echo "built ml/kernel/gru.wasm ($(wc -c <gru.wasm) bytes) with $("$CLANG" --version | head -1)"
}

check() {
  if ! have "$CLANG"; then
    echo "check:kernel: $CLANG not found; install it with: apt-get install -y clang lld" >&2
    exit 2
  fi
  local version
  version="$("$CLANG" --version | head -1)"
  CHECK_TMP="$(mktemp -d)"
  trap 'rm -rf "$CHECK_TMP"' EXIT
  local tmp="$CHECK_TMP"
  build_wasm "$tmp/gru.wasm"
  if cmp -s "$tmp/gru.wasm" gru.wasm; then
    echo "check:kernel: gru.wasm is byte-for-byte what gru.c builds to ($version)"
  else
    echo "check:kernel: gru.wasm differs from a fresh build of gru.c with $version" >&2
    echo "  committed: $(wc -c <gru.wasm) bytes, sha256 $(sha256sum gru.wasm | cut -c1-16)…" >&2
    echo "  rebuilt:   $(wc -c <"$tmp/gru.wasm") bytes, sha256 $(sha256sum "$tmp/gru.wasm" | cut -c1-16)…" >&2
    case "$version" in
      *"$EXPECTED_CLANG"*) echo "  same clang as the committed build: gru.c changed without 'npm run build:kernel'" >&2 ;;
      *) echo "  the committed build used clang $EXPECTED_CLANG; other versions may emit other bytes" >&2 ;;
    esac
    exit 1
  fi
}

node_include() {
  local include
  include="$(node -p "require('path').resolve(process.execPath, '..', '..', 'include', 'node')" 2>/dev/null || true)"
  [ -f "$include/node_api.h" ] || include=/usr/include/node
  echo "$include"
}

native_addon() { # $1: output file, then extra flags
  local out="$1"
  shift
  # -Wno-array-bounds: gcc 12 warns on matmul's bias loads in specialisations where the bias
  # pointer is null, which are exactly those that never load it.
  "$CC_NATIVE" -O3 -march=native -ffp-contract=fast -fno-math-errno -std=gnu11 -fPIC -shared -Wall -Wno-array-bounds \
    -DNAPI_VERSION=8 -I"$(node_include)" "$@" -o "$out" native.c
}

# The addon is built for this CPU (-march=native) and fuses a·b + c into FMA: it must never be
# copied to another machine. build/gru-native.json records what it was built from and for; the
# loader (load.ts) ignores the addon when the sources or the CPU differ.
native() {
  local include
  include="$(node_include)"
  if ! have "$CC_NATIVE" || [ ! -f "$include/node_api.h" ]; then
    echo "build.sh: no C compiler ($CC_NATIVE) or no Node headers (node_api.h): native kernel not built; gru.wasm is used"
    return 0
  fi
  mkdir -p build
  native_addon build/gru-native.node.tmp
  node -e '
    const fs = require("fs"), crypto = require("crypto"), os = require("os");
    const sources = Object.fromEntries(["gru.c", "native.c", "simd-native.h"].map((f) =>
      [f, crypto.createHash("sha256").update(fs.readFileSync(f)).digest("hex")]));
    const cpu = (os.cpus()[0] || {}).model || "unknown";
    fs.writeFileSync("build/gru-native.json", JSON.stringify({ arch: process.arch, cpu, sources, compiler: process.argv[1] }, null, 2));
  ' "$("$CC_NATIVE" --version | head -1)"
  mv build/gru-native.node.tmp build/gru-native.node
  echo "built ml/kernel/build/gru-native.node for this machine with $("$CC_NATIVE" --version | head -1)"
}

profile() {
  mkdir -p build
  if have "$CLANG"; then
    "$CLANG" "${WASM_FLAGS[@]}" -DKERNEL_PROFILE -o build/gru-profile.wasm gru.c
  else
    echo "build.sh: $CLANG not found: no WebAssembly profile build"
  fi
  native_addon build/gru-profile-native.node -DKERNEL_PROFILE
  echo "built ml/kernel/build/gru-profile.wasm and gru-profile-native.node (per-phase timers)"
}

case "${1:-}" in
  --check) check ;;
  --wasm) wasm ;;
  --native) native ;;
  --profile) profile ;;
  "") wasm; native ;;
  *) echo "usage: build.sh [--check|--wasm|--native|--profile]" >&2; exit 2 ;;
esac
