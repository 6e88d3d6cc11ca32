#!/usr/bin/env bash
# The outsider path, as a new user walks it (CI runs it after the test suite): in a folder OUTSIDE this clone, with
# only the .NET SDK and the two packages the build writes to artifacts/feed/ (Harness.Abstractions, Harness.Templates):
#   1. install the template and create a plugin: dotnet new harness-optimizer -n MyOptimizer
#   2. build it against the package from the local feed only (nuget.config: the feed for Harness.*, the ordinary
#      NuGet source for TorchSharp, which the contract depends on); the plugin folder must hold only its own files;
#   3. build the two examples (examples/MinimalOptimizer, examples/AdaBeliefOptimizer) the same way, from copies;
#   4. harness verify each (the conformance gate);
#   5. start `harness serve` on a free loopback port, drop the three plugins into its hot plugin folder, submit a
#      matrix through the HTTP API, wait for it and read a run's trace back through the API.
# Prints the plugin folder's size and the time from `dotnet new` to the finished matrix. Exits non-zero on any failure.
#
#   examples/outsider-path.sh [work-dir]     (default: a new temp folder; CONFIGURATION=Debug to use a Debug build)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
config="${CONFIGURATION:-Release}"
work="${1:-$(mktemp -d -t harness-outsider-XXXXXX)}"
mkdir -p "$work"
work="$(cd "$work" && pwd)"
case "$work/" in "$repo"/*) echo "outsider-path: the work folder $work is inside the clone $repo; use one outside it" >&2; exit 2 ;; esac
feed="$repo/artifacts/feed"
host="$repo/Host/bin/$config/net10.0/harness.dll"
export OMP_NUM_THREADS=1 DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
export HARNESS_VERIFY_CACHE="$work/verify-cache"

step() { echo "== $*"; }
fail() { echo "outsider-path: $*" >&2; exit 1; }

if [ ! -f "$host" ] || ! ls "$feed"/Harness.Abstractions.*.nupkg >/dev/null 2>&1 || ! ls "$feed"/Harness.Templates.*.nupkg >/dev/null 2>&1; then
  step "build the harness (host, built-in plugins, packages -> $feed)"
  dotnet build "$repo/Harness.sln" -c "$config" -nologo -v q -clp:ErrorsOnly
fi
version="$(sed -n 's:.*<Version>\(.*\)</Version>.*:\1:p' "$repo/Abstractions/Harness.Abstractions.csproj" | head -1)"
test -f "$feed/Harness.Abstractions.$version.nupkg" || fail "no Harness.Abstractions.$version.nupkg in $feed"

# A package cache of our own, so Harness.Abstractions can only come from the feed; the user's cache serves as a
# read-only fallback for TorchSharp and its dependencies, unless it holds a Harness.Abstractions (which could be stale).
export NUGET_PACKAGES="$work/packages"
fallback=""
if [ -d "$HOME/.nuget/packages" ] && [ ! -d "$HOME/.nuget/packages/harness.abstractions" ]; then
  fallback="<fallbackPackageFolders><add key=\"user-cache\" value=\"$HOME/.nuget/packages\" /></fallbackPackageFolders>"
fi
cat > "$work/nuget.config" <<EOF
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <packageSources>
    <clear />
    <add key="harness-local" value="$feed" />
    <add key="nuget.org" value="https://api.nuget.org/v3/index.json" />
  </packageSources>
  <packageSourceMapping>
    <packageSource key="harness-local"><package pattern="Harness.*" /></packageSource>
    <packageSource key="nuget.org"><package pattern="*" /></packageSource>
  </packageSourceMapping>
  $fallback
</configuration>
EOF

# Only the plugin's own files may be in its folder: no host assemblies, no TorchSharp, no native runtimes.
check_folder() {
  local dir="$1" name="$2" extra
  test -f "$dir/$name.dll" || fail "$dir/$name.dll was not built"
  extra="$(cd "$dir" && find . -mindepth 1 \( -type f -o -type d \) | sed 's:^\./::' | grep -v -x -E "$name\.(dll|pdb|deps\.json)" || true)"
  [ -z "$extra" ] || fail "$dir holds more than the plugin's own files: $(echo $extra)"
  echo "   $dir: $(cd "$dir" && ls | tr '\n' ' ')($(du -sb "$dir" | cut -f1) bytes)"
}

start="$(date +%s.%N)"
step "dotnet new harness-optimizer -n MyOptimizer (template from $feed)"
hive="$work/template-hive"
dotnet new install "$feed/Harness.Templates.$version.nupkg" --debug:custom-hive "$hive" >/dev/null
(cd "$work" && dotnet new harness-optimizer -n MyOptimizer --debug:custom-hive "$hive" >/dev/null)
test -f "$work/MyOptimizer/MyOptimizer.csproj" || fail "the template did not create MyOptimizer/MyOptimizer.csproj"

step "build it against Harness.Abstractions $version from the local feed"
dotnet build "$work/MyOptimizer" -c Release -nologo -v q -clp:ErrorsOnly
resolved="$(grep -o '"Harness.Abstractions/[^"]*"' "$work/MyOptimizer/obj/project.assets.json" | head -1)"
[ "$resolved" = "\"Harness.Abstractions/$version\"" ] || fail "the plugin resolved $resolved, not Harness.Abstractions/$version"
mine="$work/MyOptimizer/bin/plugin/MyOptimizer"
check_folder "$mine" MyOptimizer
plugin_bytes="$(du -sb "$mine" | cut -f1)"
built="$(date +%s.%N)"

step "build the examples the same way (copies outside the clone)"
for ex in MinimalOptimizer AdaBeliefOptimizer; do
  rm -rf "$work/$ex" && cp -r "$here/$ex" "$work/$ex" && rm -rf "$work/$ex/bin" "$work/$ex/obj"
  dotnet build "$work/$ex" -c Release -nologo -v q -clp:ErrorsOnly
  check_folder "$work/$ex/bin/plugin/$ex" "$ex"
done

step "harness verify"
for p in "$mine/MyOptimizer.dll" "$work/MinimalOptimizer/bin/plugin/MinimalOptimizer/MinimalOptimizer.dll" \
         "$work/AdaBeliefOptimizer/bin/plugin/AdaBeliefOptimizer/AdaBeliefOptimizer.dll"; do
  dotnet "$host" verify "$p" || fail "harness verify $p failed"
done

step "harness serve on a free loopback port; drop the plugins into its hot plugin folder"
port=""
for _ in $(seq 1 50); do
  p=$((20000 + RANDOM % 40000))
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then port=$p; break; fi
done
[ -n "$port" ] || fail "no free loopback port found"
url="http://127.0.0.1:$port"
plugins="$work/plugins"
mkdir -p "$plugins"
cp -r "$repo/artifacts/plugins/." "$plugins/"      # the built-in models (the matrix uses `quadratic`) and optimizers
(cd "$work" && exec dotnet "$host" serve --plugins "$plugins" --results "$work/results" --metrics-url "$url" \
  --threads 1 >"$work/serve.log" 2>&1) &
serve_pid=$!
trap 'kill "$serve_pid" 2>/dev/null || true; wait "$serve_pid" 2>/dev/null || true' EXIT
for i in $(seq 1 180); do
  curl -sf "$url/readyz" >/dev/null 2>&1 && break
  kill -0 "$serve_pid" 2>/dev/null || { cat "$work/serve.log" >&2; fail "harness serve exited"; }
  [ "$i" -lt 180 ] || fail "harness serve not ready after 180 s"
  sleep 1
done
for ex in MyOptimizer MinimalOptimizer AdaBeliefOptimizer; do
  src="$mine"; [ "$ex" = MyOptimizer ] || src="$work/$ex/bin/plugin/$ex"
  cp -r "$src" "$plugins/$ex"
done
for i in $(seq 1 300); do
  listed="$(curl -sf "$url/api/plugins" || true)"
  if echo "$listed" | jq -e '[.optimizers[].name] as $n | ["myoptimizer", "gd_weight_decay", "adabelief"] | all(. as $x | $n | index($x))' >/dev/null 2>&1; then break; fi
  [ "$i" -lt 300 ] || { echo "$listed" >&2; fail "the dropped plugins were not offered within 300 s"; }
  sleep 1
done

step "submit a matrix through the HTTP API"
matrix="$(cat <<'EOF'
name: outsider
dtype: float64
models:
  - name: quadratic
    hyperparameters: { dim: 20, lambda_max: 10, lambda_min: 0.1 }
optimizers:
  - name: myoptimizer
    hyperparameters: { lr: 0.05 }
  - name: gd_weight_decay
    hyperparameters: { lr: 0.05 }
  - name: adabelief
    hyperparameters: { lr: 0.01 }
training: { steps: 100 }
EOF
)"
reply="$(curl -sf --data-binary "$matrix" "$url/api/matrices")" || fail "submission refused: $(curl -s --data-binary "$matrix" "$url/api/matrices")"
echo "   $reply"
for i in $(seq 1 600); do
  state="$(curl -sf "$url/api/matrices/outsider" || true)"
  s="$(echo "$state" | jq -r '.state // .status // empty' 2>/dev/null || true)"
  case "$s" in completed|finished|done) break ;; failed|cancelled) echo "$state" >&2; fail "matrix ended $s" ;; esac
  [ "$i" -lt 600 ] || { echo "$state" >&2; fail "matrix not finished within 600 s"; }
  sleep 1
done
finished="$(date +%s.%N)"
echo "$state" | jq -c '.runs[]? | {run_id, label, status}' 2>/dev/null || echo "$state"
run="$(echo "$state" | jq -r '[.runs[] | select(.label | test("myoptimizer"))][0].run_id')"
[ -n "$run" ] && [ "$run" != null ] || fail "no run of myoptimizer in $state"

step "read the trace of $run back through the API"
detail="$(curl -sf "$url/api/runs/$run")" || fail "GET /api/runs/$run failed"
echo "$detail" | jq -e '.status == "completed"' >/dev/null || fail "run $run is not completed: $(echo "$detail" | jq -c '{status, reason}')"
trace_url="$(echo "$detail" | jq -r '.trace_parquet // empty')"
csv_url="$(echo "$detail" | jq -r '.trace_csv // empty')"
[ -n "$trace_url" ] && [ -n "$csv_url" ] || fail "the API names no trace URLs for $run: $(echo "$detail" | jq -c 'keys')"
trace="$work/$run.trace.parquet"
curl -sf -o "$trace" "$url$trace_url" || fail "GET $trace_url failed"
[ "$(head -c 4 "$trace")" = PAR1 ] && [ "$(tail -c 4 "$trace")" = PAR1 ] || fail "$trace_url is not a complete Parquet file"
csv="$(curl -sf "$url$csv_url")" || fail "GET $csv_url failed"
header="$(echo "$csv" | head -1)"
rows="$(echo "$csv" | tail -n +2 | grep -c .)"
for column in step train_loss run_id; do
  echo "$header" | tr ',' '\n' | grep -qx "$column" || fail "the trace of $run has no column $column: $header"
done
# one row per step t = 0 ... steps (docs/parquet.md): 101 rows for the 100-step matrix
[ "$rows" -eq 101 ] || fail "the trace of $run holds $rows rows, expected 101 (steps 0 ... 100)"
scol="$(echo "$header" | tr ',' '\n' | grep -nx step | cut -d: -f1)"
[ "$(echo "$csv" | tail -n +2 | cut -d, -f"$scol" | sort -n | sed -n '1p;$p' | paste -sd' ')" = "0 100" ] || fail "the trace of $run does not run from step 0 to 100"
col="$(echo "$header" | tr ',' '\n' | grep -nx run_id | cut -d: -f1)"
[ "$(echo "$csv" | tail -n +2 | cut -d, -f"$col" | sort -u)" = "$run" ] || fail "the trace rows of $run carry another run_id"
rule="$(echo "$detail" | jq -r '.manifest_content.threshold_rule // empty')"
[ "$rule" = linear_recurrence ] || fail "the manifest of $run records threshold rule '$rule', expected linear_recurrence"
echo "   trace: $trace_url ($(du -b "$trace" | cut -f1) bytes, Parquet; $rows rows, last train_loss $(echo "$csv" | tail -1 | cut -d, -f"$(echo "$header" | tr ',' '\n' | grep -nx train_loss | cut -d: -f1)")); manifest: threshold_rule $rule, $(echo "$detail" | jq -r '.manifest_content.threshold_detail'), harness $(echo "$detail" | jq -r '.manifest_content.harness_version') @ $(echo "$detail" | jq -r '.manifest_content.harness_commit')"

printf '== done: plugin folder %s bytes; dotnet new -> finished matrix %.1f s (of which dotnet new + build %.1f s; the rest builds and verifies the two examples too, starts serve and runs the matrix) (work dir %s)\n' \
  "$plugin_bytes" "$(awk "BEGIN { print $finished - $start }")" "$(awk "BEGIN { print $built - $start }")" "$work"
