#!/usr/bin/env bash
# Reproduces the GUI's vendored chart library, splineforecast/api/static/vendor/, from the npm registry:
# uPlot's IIFE build, its stylesheet and its LICENSE, unchanged, at the pinned version below (the one
# place it is set; tests/test_gui.py checks the vendored file's banner against it). npm verifies the
# tarball's integrity. To update: change UPLOT_VERSION, run this script, run tests/test_gui.py, and
# review the diff. Needs npm (or NPM=...); nothing at run time needs it.
set -euo pipefail

UPLOT_VERSION="1.6.32"

NPM="${NPM:-npm}"
repo="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${repo}/splineforecast/api/static/vendor"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/splineforecast-vendor.XXXXXX")"
trap 'rm -rf -- "$tmp"' EXIT

cd -- "$tmp"
tarball="$("$NPM" pack --silent "uplot@${UPLOT_VERSION}")"
tar -xzf "$tarball"
mkdir -p -- "$dest"
cp package/dist/uPlot.iife.min.js "${dest}/uPlot.iife.min.js"
cp package/dist/uPlot.min.css "${dest}/uPlot.min.css"
cp package/LICENSE "${dest}/uPlot.LICENSE"
echo "vendored uPlot ${UPLOT_VERSION} into ${dest}:"
sha256sum "${dest}"/uPlot.*
