#!/usr/bin/env bash
# Idempotent machine set-up for the harness. Safe to run many times.
#  - libstdc++ with GLIBCXX_3.4.32 (TorchSharp 0.107's native library needs GCC 13's runtime)
#  - the Fashion-MNIST IDX files (Debian package dataset-fashion-mnist)
#  - fonts for the report's figures (fonts-dejavu-core: ScottPlot draws with SkiaSharp's self-contained native
#    library, which needs no fontconfig but finds no text font on a minimal system without it)
#  - optionally a Prometheus server (only with --with-prometheus; the test suite needs one)
#  - optionally chromium (only with --with-browser; the report tests open the report in headless chromium)
#  - optionally Slurm and MUNGE (only with --with-slurm; the Slurm array test needs them). Their daemons are not
#    started or enabled here: the test starts its own, with its own configuration, and stops them.
# Without root it prints the exact commands to run and exits non-zero.
set -euo pipefail

want_prometheus=0
want_browser=0
want_slurm=0
for a in "$@"; do
  case "$a" in
    --with-prometheus) want_prometheus=1 ;;
    --with-browser) want_browser=1 ;;
    --with-slurm) want_slurm=1 ;;
    *) echo "setup.sh: unknown option '$a'" >&2; exit 2 ;;
  esac
done

say() { printf '[setup] %s\n' "$*" >&2; }

libstdcxx_ok() {
  local f
  for f in /usr/lib/x86_64-linux-gnu/libstdc++.so.6 /usr/lib64/libstdc++.so.6 /usr/lib/libstdc++.so.6; do
    [ -e "$f" ] && grep -aq 'GLIBCXX_3.4.32' "$f" && return 0
  done
  return 1
}

dataset_dir="${HARNESS_FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}"
dataset_ok() {
  [ -s "$dataset_dir/train-images-idx3-ubyte.gz" ] && [ -s "$dataset_dir/train-labels-idx1-ubyte.gz" ] &&
  [ -s "$dataset_dir/t10k-images-idx3-ubyte.gz" ] && [ -s "$dataset_dir/t10k-labels-idx1-ubyte.gz" ]
}
prometheus_ok() { command -v prometheus >/dev/null 2>&1; }
fonts_ok() { [ -s /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]; }
browser_ok() { command -v chromium >/dev/null 2>&1; }
slurm_ok() { [ -x /usr/sbin/slurmctld ] && [ -x /usr/sbin/slurmd ] && [ -x /usr/sbin/munged ] && command -v sbatch >/dev/null 2>&1; }

todo=()
libstdcxx_ok || todo+=(libstdcxx)
dataset_ok || todo+=(dataset)
fonts_ok || todo+=(fonts)
[ "$want_prometheus" = 1 ] && ! prometheus_ok && todo+=(prometheus)
[ "$want_browser" = 1 ] && ! browser_ok && todo+=(browser)
[ "$want_slurm" = 1 ] && ! slurm_ok && todo+=(slurm)

if [ ${#todo[@]} -eq 0 ]; then
  extras=""
  [ "$want_prometheus" = 1 ] && extras+=", prometheus"
  [ "$want_browser" = 1 ] && extras+=", chromium"
  [ "$want_slurm" = 1 ] && extras+=", slurm"
  say "machine ready (libstdc++ GLIBCXX_3.4.32, Fashion-MNIST, fonts$extras)"
  exit 0
fi

codename=""
[ -r /etc/os-release ] && codename=$(. /etc/os-release; echo "${VERSION_CODENAME:-}")

trixie_cmds=$(cat <<'CMDS'
printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: trixie\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' > /etc/apt/sources.list.d/trixie.sources
printf 'Package: *\nPin: release n=trixie\nPin-Priority: 100\n' > /etc/apt/preferences.d/trixie-pin
apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y -t trixie libstdc++6
CMDS
)

if [ "$(id -u)" != 0 ]; then
  say "this machine is missing: ${todo[*]}. Run as root:"
  for t in "${todo[@]}"; do
    case "$t" in
      libstdcxx) [ "$codename" = bookworm ] && echo "$trixie_cmds" || echo "# install a libstdc++6 that provides GLIBCXX_3.4.32 (GCC >= 13)";;
      dataset) echo "apt-get install -y dataset-fashion-mnist";;
      prometheus) echo "apt-get install -y prometheus";;
      fonts) echo "apt-get install -y fonts-dejavu-core";;
      browser) echo "apt-get install -y chromium";;
      slurm) echo "apt-get install -y --no-install-recommends slurm-wlm munge";;
    esac
  done
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
updated=0
apt_update() { [ $updated = 1 ] || { say "apt-get update"; apt-get update -qq; updated=1; }; }

for t in "${todo[@]}"; do
  case "$t" in
    libstdcxx)
      if [ "$codename" != bookworm ]; then
        say "libstdc++ lacks GLIBCXX_3.4.32 and this is not Debian 12 ('$codename'): install GCC 13+'s libstdc++6 yourself"; exit 1
      fi
      say "Debian 12 detected: installing libstdc++6 from trixie, pinned to priority 100"
      eval "$trixie_cmds" >/dev/null
      updated=1
      libstdcxx_ok || { say "libstdc++6 from trixie still lacks GLIBCXX_3.4.32"; exit 1; }
      ;;
    dataset)
      apt_update; say "installing dataset-fashion-mnist"
      apt-get install -y -qq dataset-fashion-mnist >/dev/null
      dataset_ok || { say "dataset-fashion-mnist installed but files are missing in $dataset_dir"; exit 1; }
      ;;
    prometheus)
      apt_update; say "installing prometheus (the server is started by the tests, not as a service)"
      apt-get install -y -qq --no-install-recommends prometheus >/dev/null
      # the Debian package starts a system service on :9090 where systemd runs; the tests use their own
      systemctl disable --now prometheus >/dev/null 2>&1 || true
      ;;
    fonts)
      apt_update; say "installing fonts-dejavu-core (text of the report's figures)"
      apt-get install -y -qq --no-install-recommends fonts-dejavu-core >/dev/null
      ;;
    browser)
      apt_update; say "installing chromium (the report tests render the report headless)"
      apt-get install -y -qq --no-install-recommends chromium >/dev/null
      ;;
    slurm)
      apt_update; say "installing slurm-wlm and munge (their daemons are started by the Slurm test, not as services)"
      # Keep the packages' maintainer scripts from starting munged/slurmctld/slurmd (no policy of our own if one exists).
      policy=/usr/sbin/policy-rc.d; own_policy=0
      if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; own_policy=1; fi
      rc=0; apt-get install -y -qq -o DPkg::Lock::Timeout=600 --no-install-recommends slurm-wlm munge >/dev/null || rc=$?
      [ "$own_policy" = 1 ] && rm -f "$policy"
      [ "$rc" = 0 ] || { say "apt-get install slurm-wlm munge failed (exit $rc)"; exit 1; }
      for s in slurmctld slurmd munge; do systemctl disable --now "$s" >/dev/null 2>&1 || true; done
      slurm_ok || { say "slurm-wlm and munge installed but slurmctld, slurmd, munged or sbatch is missing"; exit 1; }
      ;;
  esac
done
say "machine ready"
