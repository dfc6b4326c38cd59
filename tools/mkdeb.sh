#!/bin/sh
# mkdeb.sh BUILD_DIR: builds calmbind_<version>_<arch>.deb into BUILD_DIR from a
# hardened build (dpkg-buildflags), with Depends worked out by dpkg-shlibdeps
# (${shlibs:Depends}) and the control file written by dpkg-gencontrol from
# debian/control and debian/changelog. `make deb` runs it; lintian checks the result.
set -eu
B=$1
cd "$(dirname "$0")/.."
VERSION=$(dpkg-parsechangelog -S Version)
CODE_VERSION=$(sed -n 's/^#define CALM_VERSION "\(.*\)"/\1/p' include/calm.h)
if [ "$VERSION" != "$CODE_VERSION" ]; then
    echo "mkdeb: debian/changelog says $VERSION, include/calm.h says $CODE_VERSION" >&2
    exit 1
fi
ARCH=$(dpkg-architecture -qDEB_HOST_ARCH)
export DEB_BUILD_MAINT_OPTIONS=hardening=+all
WORK=$B/deb
STAGE=$WORK/debian/calmbind   # the path dpkg-shlibdeps expects a package tree at
rm -rf "$WORK"
mkdir -p "$WORK"

# the binary, man page and completion, built with Debian's hardening flags
make --no-print-directory B="$WORK/build" \
    CFLAGS="$(dpkg-buildflags --get CFLAGS) $(dpkg-buildflags --get CPPFLAGS)" \
    LDFLAGS="$(dpkg-buildflags --get LDFLAGS)" \
    DESTDIR="$STAGE" PREFIX=/usr ZSHCOMPDIR=/usr/share/zsh/vendor-completions install >/dev/null
strip --remove-section=.comment --remove-section=.note --strip-unneeded "$STAGE/usr/bin/calmbind"
gzip -9n "$STAGE/usr/share/man/man1/calmbind.1"

DOC=$STAGE/usr/share/doc/calmbind
install -d "$DOC/docs"
install -m 0644 debian/copyright "$DOC/copyright"
gzip -9nc debian/changelog > "$DOC/changelog.gz"
install -m 0644 README.md "$DOC/README.md"
install -m 0644 docs/*.md "$DOC/docs/"
# the examples docs/lua-api.md tells admins to copy (a policy, a command)
(cd examples && find . -type f -name '*.lua' -print) | sort | while read -r f; do
    install -D -m 0644 "examples/$f" "$DOC/examples/$f"
done

# Depends from the libraries the binary links to, the Debian way (DEBIAN/
# marks the package root for dpkg-shlibdeps)
install -d -m 0755 "$STAGE/DEBIAN"
dpkg-shlibdeps -T"$WORK/substvars" "$STAGE/usr/bin/calmbind"
dpkg-gencontrol -pcalmbind -T"$WORK/substvars" -f"$WORK/files" -P"$STAGE"
(cd "$STAGE" && find usr -type f -print0 | sort -z | xargs -0 md5sum) > "$STAGE/DEBIAN/md5sums"
chmod 0644 "$STAGE/DEBIAN/md5sums"
find "$STAGE" -type d -exec chmod 0755 {} +

DEB=$B/calmbind_${VERSION}_${ARCH}.deb
dpkg-deb --root-owner-group -Zxz --build "$STAGE" "$DEB" >/dev/null
echo "$DEB"
dpkg-deb -f "$DEB" Depends
