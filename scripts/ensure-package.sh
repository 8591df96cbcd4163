#!/bin/sh
# Installs ffmpeg through apt when it is missing, on Debian as root.
set -eu
if command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1; then
  exit 0
fi
if [ -f /etc/debian_version ] && [ "$(id -u)" = 0 ]; then
  echo "ffmpeg is missing: installing it with apt-get" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ffmpeg >/dev/null
  exit 0
fi
echo "ffmpeg and ffprobe are required: install them (e.g. sudo apt-get install ffmpeg)" >&2
exit 1
