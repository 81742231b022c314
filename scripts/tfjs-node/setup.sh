#!/usr/bin/env bash
# Makes require('@tensorflow/tfjs-node') work from package registries only
# (npm, PyPI, Debian apt), without Google's storage host. See README.md here.
#
#   scripts/tfjs-node/setup.sh [projectRoot]     (default: two levels up)
#
# Exit 0: tfjs-node loads with backend "tensorflow". Otherwise a non-zero exit
# and one line "tfjs-node: setup failed: <reason>; ..." on stderr: the caller
# falls back to the wasm backend.
set -Eeuo pipefail

readonly TFJS_NODE_PKG='@tensorflow/tfjs-node'
readonly TFJS_NODE_VERSION='4.22.0'
readonly TF_VERSION='2.9.1'   # libtensorflow that tfjs-node 4.22.0 is built for
readonly WHEEL="tensorflow_cpu-${TF_VERSION}-cp310-cp310-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
readonly WHEEL_SIZE=207453921
readonly WHEEL_SHA256='6666ddeae45e1f41da788cb4bdea3435aba16edb0bc17b7ac00631c7c9eb052e'  # PyPI's
readonly STUB_LIB='libtfjs_python_stubs.so'

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "${1:-$HERE/../..}" 2>/dev/null && pwd)" || {
  echo "tfjs-node: setup failed: project root '${1:-}' not found; falling back to the wasm backend" >&2
  exit 2
}
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/durable-sweeps/tfjs-node"
LOG="$CACHE/setup.log"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"

T0=$(date +%s.%N)
STEP='start'
STAGE=''

say() { echo "tfjs-node: $*" >&2; }
fail() {
  echo "tfjs-node: setup failed: $*; falling back to the wasm backend" >&2
  exit 1
}
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
on_error() {
  local rc=$?
  trap - ERR
  if [[ "$BASHPID" != "$$" ]]; then exit "$rc"; fi   # a subshell: the parent reports
  fail "${STEP} failed (exit ${rc}; log: ${LOG})"
}
cleanup() {
  if [[ -n "$STAGE" && -d "$STAGE" ]]; then rm -rf -- "$STAGE"; fi
}
trap on_error ERR
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Loads tfjs-node as resolved from directory $1 and runs one real op on it.
works_from() {
  (cd "$1" && timeout 300 node -e '
    const tf = require(require.resolve(process.argv[1], { paths: [process.cwd()] }));
    const v = tf.tidy(() => tf.matMul(tf.tensor2d([[1, 2], [3, 4]]), tf.tensor2d([[1], [1]])).dataSync());
    if (tf.getBackend() !== "tensorflow" || v[0] !== 3 || v[1] !== 7) {
      console.error(`backend ${tf.getBackend()}, matMul gave ${Array.from(v)}`);
      process.exit(1);
    }
  ' "$TFJS_NODE_PKG")
}

# ---------------------------------------------------------------- fast path
[[ -f "$ROOT/package.json" ]] || fail "no package.json in $ROOT"
command -v node >/dev/null || fail "node not found"
if [[ -d "$ROOT/node_modules/$TFJS_NODE_PKG" ]] && works_from "$ROOT" 2>/dev/null; then
  say "already working (backend tensorflow), nothing to do"
  exit 0
fi

# ---------------------------------------------------------------- preflight
[[ "$(uname -s)/$(uname -m)" == Linux/x86_64 ]] ||
  fail "this offline route exists only for Linux x86_64 (here: $(uname -s)/$(uname -m))"
[[ -d "$ROOT/node_modules/@tensorflow/tfjs" ]] ||
  fail "$ROOT/node_modules/@tensorflow/tfjs is missing: run npm ci / npm install first"
mkdir -p "$CACHE"

# One setup at a time per user (they share the cache and maybe node_modules).
exec 9>"$CACHE/.lock"
if ! flock -n 9; then
  say "another setup is running, waiting for it…"
  flock -w 1800 9 || fail "timed out waiting for another tfjs-node setup (lock $CACHE/.lock)"
  if works_from "$ROOT" 2>/dev/null; then
    say "working now (set up by the other run)"
    exit 0
  fi
fi
: >"$LOG"
# Leftovers of a killed run (we hold the lock, so nobody else is using them).
rm -rf -- "$ROOT"/node_modules/.tfjs-node-setup.* "$CACHE"/download.* 2>/dev/null || true

STEP='checking build tools'
for tool in gcc g++ make python3 npm nm ldd flock timeout sha256sum; do
  command -v "$tool" >/dev/null || fail "'$tool' not found (needed to build the addon)"
done
NODE_BIN="$(readlink -f "$(command -v node)")"
NODEDIR="${npm_config_nodedir:-$(dirname "$(dirname "$NODE_BIN")")}"
[[ -f "$NODEDIR/include/node/node_api.h" && -f "$NODEDIR/include/node/common.gypi" ]] ||
  fail "Node headers not found under $NODEDIR/include/node (node-gyp would try to download them)"
NODE_GYP="$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")/node_modules/node-gyp/bin/node-gyp.js"
[[ -f "$NODE_GYP" ]] || NODE_GYP=''   # node-pre-gyp then looks for node-gyp itself

if ! command -v patchelf >/dev/null; then
  STEP='installing patchelf'
  [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null ||
    fail "patchelf is missing (install the Debian package 'patchelf'; needs root)"
  say "installing patchelf (apt)…"
  apt_install() {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=300 patchelf >>"$LOG" 2>&1
  }
  if ! apt_install; then
    apt-get update -q -o DPkg::Lock::Timeout=300 >>"$LOG" 2>&1 || true
    apt_install || fail "apt-get install patchelf failed (log: $LOG)"
  fi
fi

# ---------------------------------------------------------------- staging tree
# Staged inside node_modules so that the final moves are renames on one
# filesystem; nothing in the project changes until everything has been built
# and checked here.
STAGE="$(mktemp -d "$ROOT/node_modules/.tfjs-node-setup.XXXXXX")"
STEP='reading package-lock.json'
count=$(node "$HERE/npm-closure.js" prepare "$ROOT" "$STAGE/npm" "$TFJS_NODE_PKG" "$TFJS_NODE_VERSION" 2>>"$LOG") ||
  fail "$(tail -n1 "$LOG")"
if [[ -f "$ROOT/.npmrc" ]]; then cp -- "$ROOT/.npmrc" "$STAGE/npm/.npmrc"; fi

# ---------------------------------------------------------------- the wheel
wheel_ok() {
  [[ -f "$1" && "$(stat -c %s "$1")" == "$WHEEL_SIZE" ]] &&
    [[ "$(sha256sum "$1" | cut -d' ' -f1)" == "$WHEEL_SHA256" ]]
}
STEP='checking the cached wheel'
DOWNLOAD_S=0
if wheel_ok "$CACHE/$WHEEL"; then
  say "using cached tensorflow-cpu $TF_VERSION wheel ($CACHE)"
else
  rm -f -- "$CACHE/$WHEEL"
  STEP='downloading the tensorflow-cpu wheel from PyPI'
  say "downloading tensorflow-cpu $TF_VERSION wheel from PyPI (207 MB, one time)…"
  t=$(date +%s.%N)
  dl="$(mktemp -d "$CACHE/download.XXXXXX")"
  echo "tensorflow-cpu==$TF_VERSION --hash=sha256:$WHEEL_SHA256" >"$dl/requirements.txt"
  # pip checks the hash itself (--require-hashes); its own cache would only
  # keep a second copy, hence --no-cache-dir.
  if ! python3 -m pip download --no-deps --only-binary=:all: --python-version 310 \
      --platform manylinux2014_x86_64 --require-hashes --no-cache-dir \
      --disable-pip-version-check -r "$dl/requirements.txt" -d "$dl" >>"$LOG" 2>&1; then
    rm -rf -- "$dl"
    fail "pip download of tensorflow-cpu==$TF_VERSION failed (log: $LOG)"
  fi
  wheel_ok "$dl/$WHEEL" || { rm -rf -- "$dl"; fail "downloaded wheel has the wrong size or sha256"; }
  mv -f -- "$dl/$WHEEL" "$CACHE/$WHEEL"
  rm -rf -- "$dl"
  DOWNLOAD_S=$(elapsed "$t")
  say "wheel downloaded in ${DOWNLOAD_S}s"
fi
T_BUILD=$(date +%s.%N)

# ---------------------------------------------------------------- npm packages
STEP='npm ci of the tfjs-node packages'
say "fetching $TFJS_NODE_PKG@$TFJS_NODE_VERSION and its $((count - 1)) dependencies from npm (scripts off)…"
(cd "$STAGE/npm" && npm ci --ignore-scripts --no-audit --no-fund --prefer-offline --loglevel=warn) >>"$LOG" 2>&1
PKG="$STAGE/npm/node_modules/$TFJS_NODE_PKG"
grep -q "LIBTENSORFLOW_VERSION = '$TF_VERSION'" "$PKG/scripts/deps-constants.js" ||
  fail "$TFJS_NODE_PKG expects a libtensorflow other than $TF_VERSION"

STEP='extracting TensorFlow from the wheel'
say "extracting libtensorflow_framework, the C API library and headers from the wheel…"
# Headers: all of tensorflow/c/, plus every header that the addon's sources
# reach through "tensorflow/..." includes (tensorflow/core/platform/ctstring*.h),
# which is what Google's libtensorflow archive ships.
python3 - "$CACHE/$WHEEL" "$STAGE/wheel" "$PKG/binding" >>"$LOG" 2>&1 <<'PY'
import os, re, sys, zipfile
whl, out, binding = sys.argv[1:4]
libs = ('tensorflow/libtensorflow_framework.so.2', 'tensorflow/python/_pywrap_tensorflow_internal.so')
inc_dir = 'tensorflow/include/'
include = re.compile(rb'^\s*#\s*include\s*"(tensorflow/[^"]+)"', re.M)
with zipfile.ZipFile(whl) as z:
    names = set(z.namelist())
    missing = [n for n in libs if n not in names]
    if missing:
        sys.exit('wheel lacks ' + ', '.join(missing))
    headers = {n for n in names if n.startswith(inc_dir + 'tensorflow/c/') and not n.endswith('/')}
    todo = []
    for f in os.listdir(binding):
        with open(os.path.join(binding, f), 'rb') as fh:
            todo += include.findall(fh.read())
    seen = set()
    while todo:
        h = inc_dir + todo.pop().decode()
        if h in seen or h not in names:
            continue
        seen.add(h)
        todo += include.findall(z.read(h))
    for n in (*libs, *sorted(headers | seen)):
        z.extract(n, out)
PY
W="$STAGE/wheel/tensorflow"
LIB="$PKG/deps/lib"
mkdir -p "$LIB"
mv -- "$W/include" "$PKG/deps/include"
mv -- "$W/libtensorflow_framework.so.2" "$LIB/libtensorflow_framework.so.2"
mv -- "$W/python/_pywrap_tensorflow_internal.so" "$LIB/libtensorflow.so.2"

STEP='building the CPython stub library'
say "building the CPython stub library and patching the C API library…"
# Every CPython symbol the library leaves undefined; type objects, exception
# classes and the None/True/False/NotImplemented singletons are data.
nm -D --undefined-only "$LIB/libtensorflow.so.2" | awk '{ sub(/@.*/, "", $NF); print $NF }' |
  grep -E '^_*Py' | sort -u |
  awk '/^(PyExc_[A-Za-z0-9_]+|Py[A-Za-z0-9_]*_Type|_Py_[A-Za-z]*Struct|_Py_EllipsisObject)$/ { print "PY_STUB_DATA(" $0 ")"; next }
       { print "PY_STUB_FUNC(" $0 ")" }' >"$STAGE/python-stubs.list.h"
[[ -s "$STAGE/python-stubs.list.h" ]] || fail "found no CPython symbols to stub in the C API library"
gcc -shared -fPIC -O2 -Wall -I"$STAGE" \
  -Wl,-soname,"$STUB_LIB" -o "$LIB/$STUB_LIB" "$HERE/python-stubs.c" >>"$LOG" 2>&1

STEP='patching the C API library (patchelf)'
# The library's RUNPATH already has $ORIGIN/, which finds the framework library
# and the stubs. Its SONAME becomes the usual libtensorflow.so.2 (the addon
# records it as DT_NEEDED) instead of _pywrap_tensorflow_internal.so. Two
# separate calls: patchelf 0.14 (Debian 12) combining --add-needed with
# --set-soname writes a wrong SONAME (the new DT_NEEDED string).
patchelf --add-needed "$STUB_LIB" "$LIB/libtensorflow.so.2" >>"$LOG" 2>&1
patchelf --set-soname libtensorflow.so.2 "$LIB/libtensorflow.so.2" >>"$LOG" 2>&1
[[ "$(patchelf --print-soname "$LIB/libtensorflow.so.2")" == libtensorflow.so.2 ]] ||
  fail "patchelf did not set the SONAME of the C API library"
ln -s libtensorflow.so.2 "$LIB/libtensorflow.so"
ln -s libtensorflow_framework.so.2 "$LIB/libtensorflow_framework.so"
STEP='checking the patched library'
ldd_out=$(ldd -r "$LIB/libtensorflow.so.2" 2>&1 || true)
if undefined=$(grep -E 'undefined symbol|not found' <<<"$ldd_out"); then
  echo "$undefined" >>"$LOG"
  fail "the patched C API library still has unresolved symbols or libraries: $(echo "$undefined" | head -n1)"
fi

STEP='building the tfjs-node addon (node-pre-gyp)'
say "building the native addon from source (node-gyp, headers in $NODEDIR/include/node)…"
(
  cd "$PKG"
  export npm_config_nodedir="$NODEDIR" JOBS=max
  if [[ -n "$NODE_GYP" ]]; then export npm_config_node_gyp="$NODE_GYP"; fi
  node "$STAGE/npm/node_modules/@mapbox/node-pre-gyp/bin/node-pre-gyp" install \
    --build-from-source --nodedir="$NODEDIR"
) >>"$LOG" 2>&1
binding=$(cd "$PKG" && node -p "require('@mapbox/node-pre-gyp').find(require('path').resolve('package.json'))")
[[ -f "$binding" ]] || fail "the build left no addon at $binding"
rm -rf -- "$PKG"/build "$PKG"/build-tmp-napi-v*   # objects, Makefiles with staging paths

STEP='checking tfjs-node in the staging tree'
works_from "$STAGE/npm" >>"$LOG" 2>&1 || fail "the freshly built tfjs-node does not load (log: $LOG)"

STEP='moving tfjs-node into node_modules'
moved=$(node "$HERE/npm-closure.js" install "$ROOT" "$STAGE/npm" "$TFJS_NODE_PKG" "$STAGE/old" 2>>"$LOG") ||
  fail "$(tail -n1 "$LOG")"
say "installed $moved package folder(s) into node_modules (package.json and package-lock.json untouched)"

STEP='final check'
works_from "$ROOT" >>"$LOG" 2>&1 || fail "tfjs-node was installed but does not load from $ROOT (log: $LOG)"
size=$(du -sm "$ROOT/node_modules/$TFJS_NODE_PKG/deps" | cut -f1)
if [[ "$DOWNLOAD_S" == 0 ]]; then dl_note=''; else dl_note=", plus ${DOWNLOAD_S}s download"; fi
say "ready: backend tensorflow, built in $(elapsed "$T_BUILD")s${dl_note} (total $(elapsed "$T0")s); deps/ is ${size} MB"
