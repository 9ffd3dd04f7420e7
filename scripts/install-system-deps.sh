#!/usr/bin/env bash
# Installs the Debian packages a group of aim-edge tasks needs. Idempotent and quiet when
# everything is present (no apt-get update unless something is missing).
#
#   scripts/install-system-deps.sh build   compiler, Python headers and venv (pip install .)
#   scripts/install-system-deps.sh test    build + what the test suite needs (espeak-ng, ...)
#
# Runs as root (a fresh Debian machine) or through sudo when available.
set -euo pipefail

group=${1:-build}
build_pkgs=(g++ make python3-dev python3-venv python3-pip git
            libportaudio2)  # PortAudio: microphone capture (aim-edge listen, sounddevice)
# TTS engines and free sound themes: the scene generator (export/data) and its tests
# jackd2: a virtual microphone (JACK dummy backend) for tests/test_mic_jack.py
test_pkgs=(jackd2 espeak-ng sox flite festival festvox-kallpc16k festvox-us-slt-hts
           sound-theme-freedesktop oxygen-sounds yaru-theme-sound deepin-sound-theme
           sound-icons gnome-audio
           asterisk-core-sounds-en asterisk-core-sounds-en-g722  # real speech for Whisper tests
           chromium)  # headless: renders the profiler's report.html in tests/test_profile.py

case "$group" in
  build) pkgs=("${build_pkgs[@]}") ;;
  test) pkgs=("${build_pkgs[@]}" "${test_pkgs[@]}") ;;
  *) echo "usage: $0 build|test (got '$group')" >&2; exit 2 ;;
esac

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO=sudo; else
    echo "need root to install: ${missing[*]} (run as root or install them yourself)" >&2
    exit 1
  fi
fi
echo "installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
if [[ " ${missing[*]} " == *" jackd2 "* ]]; then  # no realtime-limits question from jackd2
  echo "jackd2 jackd/tweak_rt_limits boolean false" | $SUDO debconf-set-selections
fi
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
