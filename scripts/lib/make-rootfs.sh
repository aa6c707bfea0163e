#!/usr/bin/env bash
# Makes a `docker build` context for a minimal image FROM scratch around host-built binaries,
# with no base image to pull:
#
#   scripts/lib/make-rootfs.sh [options] DIR BINARY...
#
# DIR (created; must not exist or be empty) receives:
#   DIR/rootfs/      the image's files, all owned by root:
#                      /usr/local/bin/<each BINARY>
#                      every shared library `ldd` lists for them, at the path the host loads it
#                      from, and the dynamic loader; /etc/ld.so.cache for those directories
#                      (when the host has ldconfig); the NSS modules for files and DNS if the
#                      host has them as separate libraries (glibc before 2.34)
#                      /etc/passwd and /etc/group with root and `nonroot` (65532, as distroless)
#                      /etc/nsswitch.conf (files, then DNS), /tmp (1777)
#   DIR/data/        empty; copied to the data directory owned by 65532 (with --data-dir)
#   DIR/Dockerfile   FROM scratch, COPY rootfs/ /, USER 65532:65532, ENTRYPOINT, ...
#
# Options:
#   --data-dir PATH    a directory owned by 65532:65532, declared as a VOLUME
#   --env NAME=VALUE   an ENV line (repeatable)
#   --entrypoint NAME  the binary (basename) to run [default: the first BINARY]
#   --cmd ARG          an argument of CMD (repeatable) [default: no CMD]
#   --label NAME=VALUE a LABEL line (repeatable)
#
# Then: docker build -t IMAGE:TAG DIR
# Used by scripts/build-images and by the Docker end-to-end test (node/tests/docker_cluster.rs).
# Needs bash, coreutils and ldd (glibc's); works as a non-root user (ownership is set by
# COPY --chown in the Dockerfile, not on the host).
set -euo pipefail

die() {
  echo "make-rootfs: $*" >&2
  exit 1
}

data_dir=""
entrypoint=""
envs=()
cmd=()
labels=()
while (($#)); do
  case "$1" in
  --data-dir) data_dir="${2:?--data-dir needs a path}"; shift 2 ;;
  --env) envs+=("${2:?--env needs NAME=VALUE}"); shift 2 ;;
  --entrypoint) entrypoint="${2:?--entrypoint needs a binary name}"; shift 2 ;;
  --cmd) cmd+=("${2?--cmd needs an argument}"); shift 2 ;;
  --label) labels+=("${2:?--label needs NAME=VALUE}"); shift 2 ;;
  -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  --) shift; break ;;
  -*) die "unknown option $1 (see --help)" ;;
  *) break ;;
  esac
done
(($# >= 2)) || die "usage: make-rootfs.sh [options] DIR BINARY... (see --help)"
out="$1"
shift
binaries=("$@")

if [ -e "$out" ] && [ -n "$(ls -A "$out")" ]; then
  die "$out exists and is not empty"
fi
for binary in "${binaries[@]}"; do
  [ -f "$binary" ] && [ -x "$binary" ] || die "$binary is not an executable file"
done
if [ -n "$data_dir" ] && [ "${data_dir#/}" = "$data_dir" ]; then
  die "--data-dir must be an absolute path, not $data_dir"
fi
[ -z "$entrypoint" ] && entrypoint="$(basename "${binaries[0]}")"
command -v ldd >/dev/null || die "ldd is needed (glibc's, package libc-bin)"

root="$out/rootfs"
mkdir -p "$root/usr/local/bin" "$root/etc" "$root/tmp" "$out/data"
chmod 1777 "$root/tmp"
chmod 0755 "$root" "$root/usr" "$root/usr/local" "$root/usr/local/bin" "$root/etc"

# Copies a host file to the same path in the root filesystem, following symbolic links.
copy_as_is() {
  local source="$1"
  local dest="$root$source"
  [ -e "$dest" ] && return 0
  mkdir -p "$(dirname "$dest")"
  cp -L "$source" "$dest"
  chmod 0755 "$dest"
  library_dirs["$(dirname "$source")"]=1
}

declare -A library_dirs=()
found_entrypoint=false
for binary in "${binaries[@]}"; do
  name="$(basename "$binary")"
  [ "$name" = "$entrypoint" ] && found_entrypoint=true
  install -m 0755 "$binary" "$root/usr/local/bin/$name"
  # ldd prints `libx.so.1 => /path/libx.so.1 (0x...)`, `/lib64/ld-linux-x86-64.so.2 (0x...)`
  # for the loader, and `linux-vdso.so.1 (0x...)` for the kernel's, which has no file.
  if ! listing="$(ldd "$binary" 2>&1)"; then
    if grep -q "not a dynamic executable\|statically linked" <<<"$listing"; then
      continue
    fi
    die "ldd $binary failed: $listing"
  fi
  if grep -q "not found" <<<"$listing"; then
    die "$binary needs libraries this host lacks:"$'\n'"$(grep "not found" <<<"$listing")"
  fi
  while read -r path; do
    copy_as_is "$path"
  done < <(awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$listing")
done
$found_entrypoint || die "--entrypoint $entrypoint is not one of the binaries"

# Name resolution (peers are DNS names) and user lookups go through NSS. glibc 2.34 and later
# has the files and dns modules built in; older ones load them as libraries at run time, which
# ldd does not list.
if command -v ldconfig >/dev/null; then
  # awk reads the whole listing (no early exit, which would end ldconfig with SIGPIPE).
  cache="$(ldconfig -p 2>/dev/null || true)"
  for module in libnss_files.so.2 libnss_dns.so.2 libresolv.so.2; do
    path="$(awk -v m="$module" '$1 == m && /x86-64|AArch64|64bit/ && !found { print $NF; found = 1 }' <<<"$cache")"
    if [ -z "$path" ]; then
      path="$(awk -v m="$module" '$1 == m && !found { print $NF; found = 1 }' <<<"$cache")"
    fi
    if [ -n "$path" ] && [ -e "$path" ]; then
      copy_as_is "$path"
    fi
  done
fi

# The loader finds the libraries in the directories they came from: through /etc/ld.so.cache
# when the host's ldconfig can make one for this root, and through its built-in search path
# otherwise (which covers the usual lib directories).
if ((${#library_dirs[@]})); then
  printf '%s\n' "${!library_dirs[@]}" | sort >"$root/etc/ld.so.conf"
  if command -v ldconfig >/dev/null; then
    ldconfig -r "$root" 2>/dev/null || echo "make-rootfs: ldconfig -r failed; relying on the loader's default paths" >&2
  fi
fi

cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
EOF
cat >"$root/etc/group" <<'EOF'
root:x:0:
nonroot:x:65532:
EOF
cat >"$root/etc/nsswitch.conf" <<'EOF'
passwd: files
group: files
hosts: files dns
EOF
chmod 0644 "$root/etc/passwd" "$root/etc/group" "$root/etc/nsswitch.conf"

# JSON string, for the exec forms of ENTRYPOINT and CMD.
json() {
  local s="$1"
  s="${s//\\/\\\\}"
  s="${s//\"/\\\"}"
  printf '"%s"' "$s"
}

{
  echo "# Generated by scripts/lib/make-rootfs.sh; a root filesystem made on the host, no base image."
  echo "FROM scratch"
  echo "COPY rootfs/ /"
  if [ -n "$data_dir" ]; then
    # The volume starts as a copy of this directory, so a new named volume is owned by 65532.
    echo "COPY --chown=65532:65532 data/ $data_dir/"
  fi
  for env in "${envs[@]}"; do
    echo "ENV ${env%%=*}=$(json "${env#*=}")"
  done
  for label in "${labels[@]}"; do
    echo "LABEL ${label%%=*}=$(json "${label#*=}")"
  done
  echo "USER 65532:65532"
  echo "WORKDIR /"
  if [ -n "$data_dir" ]; then
    echo "VOLUME [$(json "$data_dir")]"
  fi
  echo "ENTRYPOINT [$(json "/usr/local/bin/$entrypoint")]"
  if ((${#cmd[@]})); then
    printf 'CMD ['
    sep=""
    for arg in "${cmd[@]}"; do
      printf '%s%s' "$sep" "$(json "$arg")"
      sep=", "
    done
    printf ']\n'
  fi
} >"$out/Dockerfile"
