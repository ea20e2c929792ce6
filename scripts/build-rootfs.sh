#!/usr/bin/env bash
# Builds the default busybox rootfs once and caches it.
#
# Debian's busybox binaries lack adduser/addgroup, which Garden clients rely on, so we
# build Debian's source package with the upstream default config plus static linking.
# Usage: build-rootfs.sh [DEST]   (default /var/lib/gardend/rootfs/busybox)
set -euo pipefail

dest=${1:-/var/lib/gardend/rootfs/busybox}
cache=${GARDEND_CACHE:-/var/cache/gardend}
if [ -x "$dest/bin/busybox" ] && [ -f "$dest/.gardend-rootfs" ]; then
  exit 0
fi

bin="$cache/busybox-static"
if [ ! -x "$bin" ]; then
  if ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ && ! grep -qs '^deb-src' /etc/apt/sources.list; then
    sed -e 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources \
      > /etc/apt/sources.list.d/gardend-deb-src.sources
    apt-get update -q
  fi
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && apt-get source -q --download-only busybox >/dev/null && dpkg-source -x --skip-patches ./*.dsc src >/dev/null)
  cd "$work/src"
  make -s defconfig >/dev/null
  sed -i -e 's/^# CONFIG_STATIC is not set/CONFIG_STATIC=y/' \
         -e 's/^CONFIG_TC=y/# CONFIG_TC is not set/' .config
  make -s -j"$(nproc)" busybox >/dev/null 2>"$work/build.log" || { tail -30 "$work/build.log"; exit 1; }
  mkdir -p "$cache"
  install -m 0755 busybox "$bin"
  cd /
fi

tmp="$dest.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp"/{bin,sbin,usr/bin,usr/sbin,etc,root,home,tmp,proc,sys,dev,var,run}
chmod 1777 "$tmp/tmp"
chmod 0700 "$tmp/root"
install -m 0755 "$bin" "$tmp/bin/busybox"
for applet in $("$tmp/bin/busybox" --list-full); do
  [ -e "$tmp/$applet" ] || ln -s /bin/busybox "$tmp/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\noperator:x:37:37:Operator:/var:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n' > "$tmp/etc/passwd"
printf 'root:x:0:\noperator:x:37:\nnogroup:x:65534:\n' > "$tmp/etc/group"
printf 'root::0:0:99999:7:::\noperator:*:0:0:99999:7:::\nnobody:*:0:0:99999:7:::\n' > "$tmp/etc/shadow"
chmod 0640 "$tmp/etc/shadow"
touch "$tmp/etc/hosts" "$tmp/etc/resolv.conf" "$tmp/etc/hostname" "$tmp/.gardend-rootfs"
rm -rf "$dest"
mkdir -p "$(dirname "$dest")"
mv "$tmp" "$dest"
