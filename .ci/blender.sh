#!/usr/bin/env bash
# Blender for tests/test_groundtruth.py, which re-renders a checked-in ground-truth scene with
# benchmarks/groundtruth/generate.py: Debian's package (3.4.1) and the numpy its Python imports.
# About 80 s on a fresh machine; nothing when already installed.
set -euo pipefail
if command -v blender >/dev/null && [ -e /usr/lib/python3/dist-packages/numpy ]; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then SUDO=sudo; else SUDO=; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq blender python3-numpy >/dev/null
blender --version | head -1
