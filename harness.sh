#!/usr/bin/env bash
# Entry point for people and CI. Every command does its own set-up first (idempotent):
# machine packages (scripts/setup.sh), then restore + build.
#
#   ./harness.sh demo              run the built-in demo matrix (edge of stability, ~3 min on 2 cores)
#   ./harness.sh test              run the whole test suite
#   ./harness.sh build             set-up and build only
#   ./harness.sh <command> [args]  any host command: run, serve, validate, plugins, summary, bench, verify ...
#
# Environment: HARNESS_CONFIGURATION (Release), HARNESS_SKIP_SETUP=1 to skip the machine set-up check.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$root"
config="${HARNESS_CONFIGURATION:-Release}"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

setup() {
  [ "${HARNESS_SKIP_SETUP:-0}" = 1 ] && return 0
  if ! command -v dotnet >/dev/null 2>&1; then
    echo "error: the .NET 10 SDK (dotnet) is not on PATH; install it first: https://dot.net" >&2; exit 1
  fi
  bash "$root/scripts/setup.sh" "$@"
}

build() {
  echo "[build] dotnet build Harness.sln -c $config" >&2
  dotnet build "$root/Harness.sln" -c "$config" -nologo -v quiet -clp:ErrorsOnly >&2
}

host="$root/Host/bin/$config/net10.0/harness"
cmd="${1:-help}"
[ $# -gt 0 ] && shift
case "$cmd" in
  help|-h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  demo) setup; build; exec "$host" demo "$@" ;;
  test)
    setup --with-prometheus --with-browser; build
    log="$(mktemp)"
    set +e
    dotnet test "$root/Harness.sln" -c "$config" --no-build -nologo "$@" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    set -e
    passed=$(grep -Eo 'Passed: +[0-9]+' "$log" | awk '{s+=$2} END {print s+0}')
    failed=$(grep -Eo 'Failed: +[0-9]+' "$log" | awk '{s+=$2} END {print s+0}')
    rm -f "$log"
    echo "tests: $passed passed, $failed failed"
    [ "$rc" = 0 ] && [ "$passed" -gt 0 ] || exit $(( rc == 0 ? 1 : rc ))
    ;;
  build) setup; build ;;
  *) setup; build; exec "$host" "$cmd" "$@" ;;
esac
