#!/usr/bin/env bash
# Builds the fused training kernel from gru.c:
#   gru.wasm                the WebAssembly build (SIMD128), committed: what every install can run
#   gru-relaxed.wasm        the same source with relaxed SIMD (fused multiply-add in the products
#                           and the gate math), committed: the loader takes it where the runtime
#                           validates it and fuses its madd (load.ts), else gru.wasm
#   build/gru-native.node   optional, this machine only (not committed): the same source
#                           compiled for the host CPU as a Node addon, preferred when present
#
#   build.sh            all three (each one skipped, with a note, when its compiler is missing):
#                       npm run build:kernel, after a change to the kernel's sources
#   build.sh --native   only the addon: npm run build:kernel-native, on any machine with a C
#                       compiler, leaves the committed .wasm files alone
#   build.sh --wasm     only the two .wasm files
#   build.sh --profile  build/gru-profile.wasm, build/gru-profile-relaxed.wasm and
#                       build/gru-profile-native.node: the same kernel with per-phase timers
#                       (-DKERNEL_PROFILE), for npm run bench:train -- --profile; never committed
#   build.sh --check    rebuild both .wasm files into a temporary folder and verify they are
#                       byte-for-byte the committed ones (CI runs this)
#
# The committed gru.wasm was built with Debian clang 14.0.6 and LLD 14.0.6 (Debian 12's
# `apt-get install -y clang lld`); gru-relaxed.wasm with Debian clang 19.1.7 and LLD 19.1.7
# (Debian 12's `apt-get install -y clang-19 lld-19`): clang 14 knows relaxed SIMD only in its
# pre-standard encoding (f32x4.fma as 0xfd 0xaf), which no shipped engine accepts; clang 19
# emits the standard f32x4.relaxed_madd (0xfd 0x105). Another clang version may well emit
# different (equally valid) bytes: the check then fails and says which version it used.
#
# WebAssembly flags, and why:
#   --target=wasm32 -nostdlib -Wl,--no-entry   a library module: no libc, no main
#   -msimd128        the kernel's 128-bit vectors (wasm_simd128.h)
#   -mrelaxed-simd   (gru-relaxed.wasm only) f32x4.relaxed_madd where gru.c says vf_madd
#   -mbulk-memory    memset/memcpy become memory.fill/copy (else wasm-ld misses them)
#   -O3 -ffp-contract=off   no fused multiply-add but where the source asks for it (vf_madd in
#                    the relaxed build): results stay bit-reproducible
#   -Wl,--strip-debug, -ffile-prefix-map   no DWARF and no paths of this machine in the bytes
set -euo pipefail
cd "$(dirname "$0")"
EXPECTED_CLANG="14.0.6"
EXPECTED_CLANG_RELAXED="19.1.7"
CLANG="${CLANG:-clang}"
CLANG_RELAXED="${CLANG_RELAXED:-clang-19}"
CC_NATIVE="${CC:-cc}"
WASM_FLAGS=(--target=wasm32 -nostdlib -O3 -msimd128 -mbulk-memory -ffp-contract=off -std=c11 -Wall -Wextra -Werror
  -ffile-prefix-map="$PWD"=. -Wl,--no-entry -Wl,--strip-debug -Wl,--initial-memory=1048576)

have() { command -v "$1" >/dev/null 2>&1; }

# The two WebAssembly builds: file name, compiler, Debian packages, expected version, extra flags.
WASM_BUILDS=(gru.wasm gru-relaxed.wasm)
wasm_compiler() { case "$1" in gru.wasm) echo "$CLANG" ;; *) echo "$CLANG_RELAXED" ;; esac; }
wasm_packages() { case "$1" in gru.wasm) echo "clang lld" ;; *) echo "clang-19 lld-19" ;; esac; }
wasm_expected() { case "$1" in gru.wasm) echo "$EXPECTED_CLANG" ;; *) echo "$EXPECTED_CLANG_RELAXED" ;; esac; }
wasm_extra() { case "$1" in gru.wasm) ;; *) echo "-mrelaxed-simd" ;; esac; }

build_wasm() { # $1: which build (its committed name), $2: output file, then extra flags
  local which="$1" out="$2"
  shift 2
  # shellcheck disable=SC2046
  "$(wasm_compiler "$which")" "${WASM_FLAGS[@]}" $(wasm_extra "$which") "$@" -o "$out" gru.c
}

wasm() {
  local which cc
  for which in "${WASM_BUILDS[@]}"; do
    cc="$(wasm_compiler "$which")"
    if ! have "$cc"; then
      echo "build.sh: $cc not found, $which left as committed (apt-get install -y $(wasm_packages "$which") to rebuild it)"
      continue
    fi
    build_wasm "$which" "$which"
    chmod 644 "$which" # wasm-ld marks its output executable; a .wasm is not
    echo "built ml/kernel/$which ($(wc -c <"$which") bytes) with $("$cc" --version | head -1)"
  done
}

check() {
  local which cc version failed=0
  CHECK_TMP="$(mktemp -d)"
  trap 'rm -rf "$CHECK_TMP"' EXIT
  local tmp="$CHECK_TMP"
  for which in "${WASM_BUILDS[@]}"; do
    cc="$(wasm_compiler "$which")"
    if ! have "$cc"; then
      echo "check:kernel: $cc (for $which) not found; install it with: apt-get install -y $(wasm_packages "$which")" >&2
      exit 2
    fi
    version="$("$cc" --version | head -1)"
    build_wasm "$which" "$tmp/$which"
    if cmp -s "$tmp/$which" "$which"; then
      echo "check:kernel: $which is byte-for-byte what gru.c builds to ($version)"
    else
      failed=1
      echo "check:kernel: $which differs from a fresh build of gru.c with $version" >&2
      echo "  committed: $(wc -c <"$which") bytes, sha256 $(sha256sum "$which" | cut -c1-16)…" >&2
      echo "  rebuilt:   $(wc -c <"$tmp/$which") bytes, sha256 $(sha256sum "$tmp/$which" | cut -c1-16)…" >&2
      case "$version" in
        *"$(wasm_expected "$which")"*) echo "  same clang as the committed build: gru.c changed without 'npm run build:kernel'" >&2 ;;
        *) echo "  the committed build used clang $(wasm_expected "$which"); other versions may emit other bytes" >&2 ;;
      esac
    fi
  done
  [ "$failed" = 0 ] || exit 1
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
    const sources = Object.fromEntries(["gru.c", "native.c", "simd-native.h", "amx-native.h"].map((f) =>
      [f, crypto.createHash("sha256").update(fs.readFileSync(f)).digest("hex")]));
    const cpu = (os.cpus()[0] || {}).model || "unknown";
    fs.writeFileSync("build/gru-native.json", JSON.stringify({ arch: process.arch, cpu, sources, compiler: process.argv[1] }, null, 2));
  ' "$("$CC_NATIVE" --version | head -1)"
  mv build/gru-native.node.tmp build/gru-native.node
  echo "built ml/kernel/build/gru-native.node for this machine with $("$CC_NATIVE" --version | head -1)"
}

profile() {
  mkdir -p build
  local which cc
  for which in "${WASM_BUILDS[@]}"; do
    cc="$(wasm_compiler "$which")"
    if have "$cc"; then
      build_wasm "$which" "build/${which/gru/gru-profile}" -DKERNEL_PROFILE
    else
      echo "build.sh: $cc not found: no profile build of $which"
    fi
  done
  native_addon build/gru-profile-native.node -DKERNEL_PROFILE
  echo "built ml/kernel/build/gru-profile.wasm, gru-profile-relaxed.wasm and gru-profile-native.node (per-phase timers)"
}

case "${1:-}" in
  --check) check ;;
  --wasm) wasm ;;
  --native) native ;;
  --profile) profile ;;
  "") wasm; native ;;
  *) echo "usage: build.sh [--check|--wasm|--native|--profile]" >&2; exit 2 ;;
esac
