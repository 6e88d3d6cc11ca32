#!/usr/bin/env bash
# Regenerates the report figure the README shows (docs/images/demo-sharpness.png): runs the demo matrix into a
# temporary results folder (about 2 minutes on 2 cores) and copies the sharpness figure of its report.
# Usage: scripts/readme-figure.sh   (HARNESS_SKIP_SETUP=1 to skip the machine set-up check)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
results="$(mktemp -d)"
trap 'rm -rf "$results"' EXIT
"$root/harness.sh" demo --results "$results" --metrics-url none --no-progress --threads "${HARNESS_THREADS:-1}" >&2
mkdir -p "$root/docs/images"
cp "$results/demo/report/sharpness.png" "$root/docs/images/demo-sharpness.png"
echo "$root/docs/images/demo-sharpness.png"
