#!/usr/bin/env bash
# Builds the example optimizer plugin (examples/AdaBeliefOptimizer, compiled against the Harness.Abstractions package
# from the local feed artifacts/feed, see examples/nuget.config),
# drops it into a plugin folder beside the built-in plugins, runs the conformance gate on it (`harness verify`)
# and a short matrix with it (`harness run`). Exits non-zero when any of these fails. CI calls it as is.
#
#   examples/try-example.sh [work-dir]      (default work dir: a new temp folder; CONFIGURATION=Release to switch)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
config="${CONFIGURATION:-Debug}"
work="${1:-$(mktemp -d -t harness-example-XXXXXX)}"
mkdir -p "$work"

echo "== build the host (with the built-in plugins and the packages) and the example plugin"
dotnet build "$repo/Host/Harness.Host.csproj" -c "$config" -nologo -v q   # also packs Harness.Abstractions into artifacts/feed
rm -rf "$repo/artifacts/nuget-packages/harness.abstractions"   # the feed's package of this build, not a cached one
dotnet build "$here/AdaBeliefOptimizer/AdaBeliefOptimizer.csproj" -c "$config" -nologo -v q
host="$repo/Host/bin/$config/net10.0/harness.dll"

echo "== drop it into a plugin folder: $work/plugins"
plugins="$work/plugins"
rm -rf "$plugins" && mkdir -p "$plugins/AdaBeliefOptimizer"
cp -r "$(dirname "$host")/plugins/." "$plugins/"
cp "$here/AdaBeliefOptimizer/bin/plugin/AdaBeliefOptimizer/"* "$plugins/AdaBeliefOptimizer/"

echo "== harness verify"
dotnet "$host" verify "$plugins/AdaBeliefOptimizer/AdaBeliefOptimizer.dll"

echo "== harness run (short matrix)"
dotnet "$host" run "$here/AdaBeliefOptimizer/example.yaml" --plugins "$plugins" --results "$work/results" --metrics-url none --no-progress
test -f "$work/results/adabelief-example/summary.parquet"
echo "== done: results in $work/results/adabelief-example"
