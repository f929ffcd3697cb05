#!/usr/bin/env bash
# Installs everything Silobreak needs on a Debian machine (as root) and builds the guest image.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

# QEMU 10 or later: QEMU 7.2 (Debian 12's own) loses guest memory writes during a live migration
# under TCG, which kills moved guests (src/agent/migration/README.md). Debian 12 gets it from its
# backports suite (pinned low by apt, so nothing else is taken from there); Debian 13 has it.
qemu_release=()
. /etc/os-release
if [ "${VERSION_CODENAME:-}" = bookworm ]; then
  backports=/etc/apt/sources.list.d/silobreak-bookworm-backports.sources
  if [ ! -f "$backports" ]; then
    echo "setup: adding Debian's bookworm-backports suite (for QEMU 10)"
    printf '%s\n' 'Types: deb' 'URIs: http://deb.debian.org/debian' 'Suites: bookworm-backports' \
      'Components: main' 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' >"$backports"
    apt-get update -qq
  fi
  qemu_release=(-t bookworm-backports)
fi
qemu_version=$(dpkg-query -W -f='${Version}' qemu-system-x86 2>/dev/null || true)
if [ -z "$qemu_version" ] || ! dpkg --compare-versions "$qemu_version" ge 1:10; then
  echo "setup: installing QEMU 10 (qemu-system-x86, qemu-utils${qemu_release[*]:+ from ${qemu_release[1]}})"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${qemu_release[@]}" qemu-system-x86 qemu-utils >/dev/null
fi

# chromium: the web console's end-to-end tests drive Debian's Chromium (playwright-core, no
# browser download). systemd: its systemd-analyze checks the shipped units in the tests (deploy/, src/deploy.test.ts).
# sanlock, sshfs, openssh-sftp-server, socat: clusters' leases and the lab's shared storage (src/lab/shared-storage.ts).
packages=(qemu-guest-agent iproute2 busybox-static cpio iputils-ping iperf3 gcc libc6-dev xz-utils e2fsprogs openssl procps xorriso systemd chromium sanlock sshfs openssh-sftp-server socat)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# postgresql: the manager's unit and API tests run a second time on PostgreSQL (issue 31), on a
# cluster each test process makes and removes (src/manager/test-postgres.ts). Debian's package would
# also make and start a `main` cluster on port 5432, which nothing here uses: that is switched off
# before the first install.
if ! dpkg-query -W -f='${Status}' postgresql 2>/dev/null | grep -q 'install ok installed'; then
  echo "setup: installing Debian's postgresql (for the tests on PostgreSQL)"
  if [ ! -d /etc/postgresql-common ]; then
    mkdir -p /etc/postgresql-common/createcluster.d
    echo 'create_main_cluster = false' >/etc/postgresql-common/createcluster.d/silobreak-no-main-cluster.conf
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi

# promtool checks the shipped Prometheus alerting rules in the tests. It is taken from Debian's
# prometheus package without installing that package, which would start a Prometheus server.
if ! command -v promtool >/dev/null; then
  echo "setup: promtool (from Debian's prometheus package)"
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download -q prometheus >/dev/null 2>&1)
  dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/x"
  install -m 0755 "$tmp/x/usr/bin/promtool" /usr/local/bin/promtool
  rm -rf "$tmp"
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi

# The web console (src/web/app, with the API schemas it bundles) is built into src/web/dist,
# which the manager serves; rebuilt when a source is newer than the last build.
if [ ! -f src/web/dist/index.html ] || [ -n "$(find src/web/app src/web/vite.config.ts src/api -newer src/web/dist/index.html -print -quit)" ]; then
  echo "setup: building the web console"
  npm run --silent build:web >/dev/null
fi

echo "setup: guest image"
node bin/silobreak.js guest build
