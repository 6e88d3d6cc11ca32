#!/usr/bin/env bash
# Installs the PyTorch reference of `harness bench peer` (Debian's python3-torch, python3-scipy, python3-numpy, OpenBLAS).
# For the peer benchmark only: neither the harness, its tests nor CI need these packages.
set -euo pipefail
# libopenblas0: python3-torch links the generic libblas.so.3, which is the slow reference BLAS unless OpenBLAS provides it.
pkgs=(python3-torch python3-scipy python3-numpy libopenblas0-pthread)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -eq 0 ]; then echo "peer reference packages already installed: ${pkgs[*]}"; exit 0; fi
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
/usr/bin/python3 -c 'import torch, scipy, numpy; print("torch", torch.__version__, "scipy", scipy.__version__, "numpy", numpy.__version__)'
