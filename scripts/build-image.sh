#!/usr/bin/env bash
# Build the image from the repository's Dockerfile with buildah, with no Docker
# engine and no container registry: the Debian base images the Dockerfile's FROM
# lines name (debian:13 for the builder stage, debian:13-slim for the runtime)
# are made here with debootstrap from Debian's own packages, the way Debian's
# official images are (a minbase system, their apt and dpkg settings, the slim
# variant without documentation, man pages and locales), and tagged with those
# names in a container storage of our own, so the Dockerfile builds unchanged.
#
#   scripts/build-image.sh [--id-file FILE]
#
# Prints the image's id and size at the end (and writes the id to FILE).
#
# Everything is cached under ~/.cache/onboard/image (OB_CACHE_DIR): the base
# images (made again when older than OB_IMAGE_BASE_MAX_AGE_DAYS, default 7, so
# that they carry Debian's updates) and buildah's layer cache, so a rebuild
# redoes only what the changed sources invalidate (the compile and the final
# copy). Layers no longer used by the newest build are removed after it.
#
# Environment:
#   OB_IMAGE                 the tag (localhost/onboard:dev)
#   OB_IMAGE_STORAGE         container storage root (~/.cache/onboard/image/storage);
#                            `system` uses buildah's default storage (then nothing is
#                            pruned, and its debian:* tags name the bases made here)
#   OB_IMAGE_STORAGE_DRIVER  overlay or vfs (default: what containers/storage picks)
#   OB_DEBIAN_MIRROR         Debian archive for the base (default: the one this host's
#                            apt uses, else debootstrap's default); the security
#                            archive likewise from OB_DEBIAN_SECURITY_MIRROR
#   BUILDAH_ISOLATION        how RUN steps run (default chroot: needs no OCI runtime,
#                            cgroups or user namespaces, so it works inside CI sandboxes)
#   OB_IMAGE_VERBOSE=1       show buildah's whole output, not only its steps
#
# Needs root (debootstrap, and buildah with chroot isolation) and the Debian
# packages buildah and debootstrap (scripts/deps.sh installs them).
# Exit 0: built; 1: failed; 77: buildah or debootstrap is missing.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
CACHE=${OB_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/onboard}
IMG_DIR=$CACHE/image
IMAGE=${OB_IMAGE:-localhost/onboard:dev}
MAX_AGE_DAYS=${OB_IMAGE_BASE_MAX_AGE_DAYS:-7}
ID_FILE=""
start=$SECONDS

while [ $# -gt 0 ]; do
  case "$1" in
    --id-file) ID_FILE=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "usage: $0 [--id-file FILE]" >&2; exit 2 ;;
  esac
done

say() { printf 'build-image: %s\n' "$*"; }
elapsed() { printf '%ds' $((SECONDS - start)); }

for t in buildah debootstrap; do
  if ! command -v "$t" >/dev/null 2>&1; then
    say "$t is missing (scripts/deps.sh installs buildah and debootstrap)" >&2
    exit 77
  fi
done
if [ "$(id -u)" -ne 0 ]; then
  say "needs root (debootstrap, and buildah's chroot isolation); run it with sudo" >&2
  exit 1
fi

mkdir -p "$IMG_DIR"
# One build at a time per cache (CI and a developer may share a machine).
exec 9>"$IMG_DIR/lock"
flock 9

# The container storage: our own by default, so that the debian:* tags made
# here never stand in for the registry's images anywhere else, and so that
# pruning cannot touch anyone else's images.
STORE=()
OWN_STORAGE=1
if [ "${OB_IMAGE_STORAGE:-}" = system ]; then
  OWN_STORAGE=0
else
  GRAPHROOT=${OB_IMAGE_STORAGE:-$IMG_DIR/storage}
  RUNROOT=/run/onboard-image-$(printf '%s' "$GRAPHROOT" | sha256sum | cut -c1-12)
  STORE=(--root "$GRAPHROOT" --runroot "$RUNROOT")
fi
if [ -n "${OB_IMAGE_STORAGE_DRIVER:-}" ]; then STORE+=(--storage-driver "$OB_IMAGE_STORAGE_DRIVER"); fi
bah() { buildah "${STORE[@]}" "$@"; }

# ------------------------------------------------------------ base images
# The FROM lines, with the Dockerfile's own ARG defaults filled in.
declare -A ARGS=()
while IFS='=' read -r k v; do ARGS[$k]=$v; done < <(sed -n 's/^ARG \([A-Za-z_][A-Za-z0-9_]*\)=\(.*\)$/\1=\2/p' Dockerfile)
expand() {
  local s=$1 k
  for k in "${!ARGS[@]}"; do s=${s//\$\{$k\}/${ARGS[$k]}}; s=${s//\$$k/${ARGS[$k]}}; done
  printf '%s' "$s"
}
FROMS=()
STAGES=()
while read -r from stage; do
  from=$(expand "$from")
  local_stage=0
  for s in "${STAGES[@]}"; do [ "$s" = "$from" ] && local_stage=1; done
  [ $local_stage = 1 ] || FROMS+=("$from")
  [ -z "$stage" ] || STAGES+=("$stage")
done < <(sed -n 's/^FROM[[:space:]]\{1,\}\(--platform=[^ ]* \)\{0,1\}\([^ ]*\)\([[:space:]]\{1,\}[Aa][Ss][[:space:]]\{1,\}\([^ ]*\)\)\{0,1\}.*$/\2 \4/p' Dockerfile)

codename_of() { # a Debian release number or codename -> codename
  case "$1" in
    11) echo bullseye ;; 12) echo bookworm ;; 13) echo trixie ;; 14) echo forky ;; 15) echo duke ;;
    [a-z]*) echo "$1" ;;
    *) return 1 ;;
  esac
}

# Which Debian releases the FROM lines need, as debian:TAG and debian:TAG-slim.
declare -A RELEASES=()
for f in "${FROMS[@]}"; do
  ref=${f##*/} # any registry and namespace: the base is made here
  if [[ ! $ref =~ ^debian:([a-z0-9.]+)(-slim)?$ ]]; then
    say "the Dockerfile's base $f is not a Debian image this script can make with debootstrap" >&2
    exit 1
  fi
  tag=${BASH_REMATCH[1]}
  if ! codename_of "$tag" >/dev/null; then
    say "no Debian codename known for debian:$tag (add it to codename_of)" >&2
    exit 1
  fi
  RELEASES[$tag]=1
done

# The Debian archive: OB_DEBIAN_MIRROR, else the one this host's apt uses for
# its own release (and its security archive), else debootstrap's default.
HOST_CODENAME=$(sed -n 's/^VERSION_CODENAME=//p' /etc/os-release 2>/dev/null | tr -d '"' || true)
host_uri() { # RELEASE -> the archive URI this host's apt fetches that release from
  # shellcheck disable=SC2016 # apt's own $(FIELD) placeholders
  apt-get indextargets --format '$(RELEASE) $(SITE)' 'Created-By: Packages' 2>/dev/null |
    awk -v r="$1" '$1 == r { print $2; exit }'
}
MIRROR=${OB_DEBIAN_MIRROR:-}
SEC_MIRROR=${OB_DEBIAN_SECURITY_MIRROR:-}
if [ -n "$HOST_CODENAME" ]; then
  [ -n "$MIRROR" ] || MIRROR=$(host_uri "$HOST_CODENAME")
  [ -n "$SEC_MIRROR" ] || SEC_MIRROR=$(host_uri "$HOST_CODENAME-security")
fi

# make_base TAG CODENAME: debootstrap a minbase system into a working
# directory and commit it twice, as debian:TAG and debian:TAG-slim.
make_base() {
  local tag=$1 codename=$2 work=$IMG_DIR/base-work log=$IMG_DIR/debootstrap-$2.log
  local rootfs=${work:?}/rootfs
  rm -rf "$work"
  mkdir -p "$work"
  say "making the base debian:$tag ($codename) with debootstrap (once a week; about a minute; log: $log)"
  if ! debootstrap --variant=minbase "$codename" "$rootfs" ${MIRROR:+"$MIRROR"} >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    say "debootstrap $codename failed" >&2
    exit 1
  fi
  local uri
  uri=$(sed -n 's/^deb \([^ ]*\) .*/\1/p' "$rootfs/etc/apt/sources.list" | head -1)
  # Debian's official images: deb822 sources with the updates and security
  # suites, no apt caches, no package lists, no Translation files, no
  # recommended-by-suggests autoremoval, services never started by maintainer
  # scripts, and no host names or resolvers baked in (the runtime provides them).
  rm -f "$rootfs/etc/apt/sources.list"
  {
    printf 'Types: deb\nURIs: %s\nSuites: %s %s-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      "$uri" "$codename" "$codename"
    if [ -n "$SEC_MIRROR" ]; then
      printf '\nTypes: deb\nURIs: %s\nSuites: %s-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
        "$SEC_MIRROR" "$codename"
    fi
  } >"$rootfs/etc/apt/sources.list.d/debian.sources"
  cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
  echo 'Acquire::Languages "none";' >"$rootfs/etc/apt/apt.conf.d/docker-no-languages"
  echo 'Acquire::GzipIndexes "true";' >"$rootfs/etc/apt/apt.conf.d/docker-gzip-indexes"
  echo 'Apt::AutoRemove::SuggestsImportant "false";' >"$rootfs/etc/apt/apt.conf.d/docker-autoremove-suggests"
  echo 'force-unsafe-io' >"$rootfs/etc/dpkg/dpkg.cfg.d/docker-apt-speedup"
  printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
  chmod 0755 "$rootfs/usr/sbin/policy-rc.d"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin \
    "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/apt/* "$rootfs/var/log/bootstrap.log" \
    "${rootfs:?}"/dev/* "${rootfs:?}"/tmp/* "${rootfs:?}"/run/* 2>/dev/null || true
  mkdir -p "$rootfs/var/lib/apt/lists/partial"
  : >"$rootfs/etc/resolv.conf"
  : >"$rootfs/etc/hostname"

  commit_rootfs() { # DIR NAME -> prints the image id
    local ctr mnt id
    ctr=$(bah from --quiet scratch)
    mnt=$(bah mount "$ctr")
    tar -C "$1" --numeric-owner -cf - . | tar -C "$mnt" --numeric-owner -xpf -
    bah umount "$ctr" >/dev/null
    bah config --cmd '["bash"]' \
      --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$ctr"
    id=$(bah commit --quiet --rm "$ctr" "$2")
    printf '%s' "$id"
  }
  local full slim
  full=$(commit_rootfs "$rootfs" "localhost/debian:$tag")
  # The slim variant: what Debian's -slim images leave out, by dpkg path
  # excludes (so later installs leave it out too) and removed now.
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/man/*
EOF
  find "$rootfs/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
  find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$rootfs"/usr/share/groff/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/linda/* \
    "$rootfs"/usr/share/lintian/overrides/* "$rootfs"/usr/share/locale/* "$rootfs"/usr/share/man/*
  slim=$(commit_rootfs "$rootfs" "localhost/debian:$tag-slim")
  rm -rf "$work"
  printf '%s %s %s\n' "$BASE_KEY" "$full" "$slim" >"$IMG_DIR/base-$tag.stamp"
}

# The base is made again when this script's way of making it changes, the
# archive changes, or it is older than MAX_AGE_DAYS.
BASE_FN=$(sed -n '/^make_base()/,/^}/p' "$0")
for tag in "${!RELEASES[@]}"; do
  codename=$(codename_of "$tag")
  BASE_KEY=$(printf '%s\n' "$tag" "$codename" "$MIRROR" "$SEC_MIRROR" "$BASE_FN" | sha256sum | cut -c1-16)
  stamp=$IMG_DIR/base-$tag.stamp
  fresh=0
  if [ -f "$stamp" ] && [ -z "$(find "$stamp" -mtime +"$((MAX_AGE_DAYS - 1))" 2>/dev/null)" ]; then
    read -r key full slim <"$stamp" || true
    if [ "${key:-}" = "$BASE_KEY" ] && bah inspect --type image "$full" >/dev/null 2>&1 &&
        bah inspect --type image "$slim" >/dev/null 2>&1; then
      # The tags may have been lost (e.g. OB_IMAGE_STORAGE=system and a pull).
      bah tag "$full" "localhost/debian:$tag"
      bah tag "$slim" "localhost/debian:$tag-slim"
      fresh=1
    fi
  fi
  if [ $fresh = 1 ]; then
    say "base debian:$tag and debian:$tag-slim ($codename): cached, made $(date -r "$stamp" '+%F %H:%M')"
  else
    make_base "$tag" "$codename"
    say "base debian:$tag and debian:$tag-slim ($codename) made ($(elapsed))"
  fi
done

# ------------------------------------------------------------ the image
LOG=$IMG_DIR/build.log
: >"$LOG"
isolation=()
[ -n "${BUILDAH_ISOLATION:-}" ] || isolation=(--isolation chroot)
# bud TAG [--target STAGE]: one buildah build, its steps shown, all of it logged.
bud() {
  local tag=$1 rc
  shift
  set +e
  bah bud --layers --pull=never "${isolation[@]}" -f Dockerfile -t "$tag" --iidfile "$IMG_DIR/iid" "$@" "$ROOT" 2>&1 |
    tee -a "$LOG" |
    if [ "${OB_IMAGE_VERBOSE:-0}" = 1 ]; then cat; else
      # Each step once, marked when it came from the cache.
      awk '/^(\[[0-9]+\/[0-9]+\] )?STEP [0-9]+\/[0-9]+:/ { if (s != "") print s; s = "  " substr($0, 1, 110); fflush(); next }
           /^--> Using cache/ { if (s != "") print s " [cached]"; s = ""; fflush(); next }
           /^(Error|error)/ { print; fflush() }
           END { if (s != "") print s }'
    fi
  rc=${PIPESTATUS[0]}
  set -e
  if [ "$rc" -ne 0 ] || [ ! -s "$IMG_DIR/iid" ]; then
    tail -n 40 "$LOG" >&2
    say "FAIL: buildah bud exited $rc (the whole log: $LOG)" >&2
    exit 1
  fi
}
# The intermediate stages first, each tagged (localhost/onboard-cache:STAGE), so
# that their layers stay in the cache; then the image, which finds them there.
final=${STAGES[${#STAGES[@]} - 1]:-}
for stage in "${STAGES[@]}"; do
  [ "$stage" != "$final" ] || continue
  say "building stage $stage (buildah bud, layers cached; log: $LOG)"
  rm -f "$IMG_DIR/iid"
  bud "localhost/onboard-cache:$stage" --target "$stage"
done
say "building $IMAGE from the Dockerfile"
rm -f "$IMG_DIR/iid"
bud "$IMAGE"
ID=$(cat "$IMG_DIR/iid")

# Only what the newest build uses stays: images nothing tagged descends from
# (earlier builds' layers, replaced bases) are removed, children first.
if [ $OWN_STORAGE = 1 ]; then
  count() { bah images --all --quiet | wc -l; }
  before=$(count)
  for _ in 1 2 3 4 5 6 7 8; do
    n=$(count)
    bah rmi --prune >/dev/null 2>&1 || true
    [ "$(count)" != "$n" ] || break
  done
  pruned=$((before - $(count)))
  [ $pruned -le 0 ] || say "removed $pruned image(s) no longer used"
fi

[ -z "$ID_FILE" ] || printf '%s\n' "$ID" >"$ID_FILE"
size=$(bah images --format '{{.Size}}' "$ID" | head -1)
runtime_base=${FROMS[${#FROMS[@]} - 1]}
say "built $IMAGE in $(elapsed)"
say "image id: $ID"
say "image size: $size uncompressed (its base, $runtime_base: $(bah images --format '{{.Size}}' "$runtime_base" 2>/dev/null | head -1))"
if [ $OWN_STORAGE = 1 ]; then
  say "storage: buildah/podman ${STORE[*]} (e.g. podman ${STORE[*]} run --rm $IMAGE onboardctl --help)"
fi
