#!/usr/bin/env bash
# Installs Debian packages (apt; sudo when not root). The setup scripts call it only for what is
# missing, so that their runs stay idempotent and quick. apt's and dpkg's chatter goes to a log
# that is printed only when the install fails.
#
# Another apt or dpkg may be running (unattended upgrades, a second setup script, CI's own
# installs): every call waits for its locks (up to APT_LOCK_WAIT seconds, default 600) instead of
# failing at once. apt waits for dpkg's lock itself (DPkg::Lock::Timeout); the package lists' lock,
# which `apt-get update` takes, is waited for here.
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
wait_s="${APT_LOCK_WAIT:-600}"
log="$(mktemp -t apt-install.XXXXXX.log)"

# Runs an apt command, retrying while it fails on a lock that another process holds.
apt_waiting() {
  local deadline=$(($(date +%s) + wait_s))
  while :; do
    if "$@" -o DPkg::Lock::Timeout="$wait_s" >>"$log" 2>&1; then return 0; fi
    if ! tail -n 5 "$log" | grep -q "Could not get lock\|Unable to lock\|is held by process" || [ "$(date +%s)" -ge "$deadline" ]; then
      return 1
    fi
    echo "apt-install: waiting for another apt/dpkg to finish" >&2
    sleep 5
  done
}

if ! { apt_waiting $SUDO apt-get update -qq && apt_waiting $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o Dpkg::Use-Pty=0 --no-install-recommends "$@"; }; then
  cat "$log" >&2
  echo "apt-install: installing $* failed (the output is above)" >&2
  exit 1
fi
rm -f "$log"
echo "apt-install: installed $*"
