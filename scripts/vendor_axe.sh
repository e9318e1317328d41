#!/usr/bin/env bash
# Vendors axe-core's axe.min.js and its LICENSE under tests/fixtures/axe/ (test-only: the GUI browser tests'
# accessibility check injects it; the product never serves it). Run from the repository root.
set -euo pipefail
VERSION="4.10.2"
dest="tests/fixtures/axe"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "axe-core@${VERSION}" >/dev/null && tar -xzf "axe-core-${VERSION}.tgz")
mkdir -p "$dest"
cp "$work/package/axe.min.js" "$work/package/LICENSE" "$dest/"
sha256sum "$dest/axe.min.js"
