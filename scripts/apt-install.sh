#!/usr/bin/env bash
# Installs Debian packages (apt, quietly; sudo when not root). The setup scripts call it only for
# what is missing, so that their runs stay idempotent and quick.
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@"
