#!/bin/sh
# ensure-package.sh DEBIAN_PACKAGE COMMAND...
# Installs the Debian package through apt when any of the commands is
# missing, on Debian as root; otherwise says what to install.
set -eu
package=$1
shift
missing=0
for command in "$@"; do
  command -v "$command" >/dev/null 2>&1 || missing=1
done
[ "$missing" = 0 ] && exit 0
if [ -f /etc/debian_version ] && [ "$(id -u)" = 0 ]; then
  echo "$package is missing: installing it with apt-get" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$package" >/dev/null
  exit 0
fi
echo "$* required: install the $package package (e.g. sudo apt-get install $package)" >&2
exit 1
