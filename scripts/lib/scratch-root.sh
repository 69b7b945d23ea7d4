# Shared by scripts/test-packages.sh and scripts/test-container-layout.sh (sourced, not run).
#
# A "scratch root" is a directory laid out like the target system (an extracted .deb, or
# the tree a Dockerfile builds). Commands run in it with chroot, so absolute paths such as
# /usr/share/hums/classes/pump.toml resolve inside the tree exactly as they would on the
# installed system or in the image, and nothing outside the tree is read or written.

# die MESSAGE...: print to stderr and exit 1.
die() {
    echo "FAIL: $*" >&2
    exit 1
}

# step MESSAGE...: a progress line.
step() {
    echo "==> $*"
}

# new_root: a fresh scratch root (mode 0755, so an unprivileged user can use it as /);
# sets SCRATCH_ROOT. Removed on exit unless KEEP=1.
new_root() {
    SCRATCH_ROOT=$(mktemp -d "${TMPDIR:-/tmp}/hums-root.XXXXXX")
    chmod 0755 "$SCRATCH_ROOT"
    mkdir -p "$SCRATCH_ROOT/tmp"
    chmod 1777 "$SCRATCH_ROOT/tmp"
    SCRATCH_ROOTS="${SCRATCH_ROOTS:-} $SCRATCH_ROOT"
    trap cleanup_roots EXIT
}

cleanup_roots() {
    local r
    for r in ${SCRATCH_ROOTS:-}; do
        if [ "${KEEP:-0}" = 1 ]; then
            echo "kept scratch root $r"
        else
            rm -rf "$r"
        fi
    done
}

# add_runtime_libs ROOT BINARY: copies the shared libraries BINARY needs (and its dynamic
# loader), as `ldd` resolves them on this machine, to the same paths under ROOT. This
# stands in for the base system (Debian's libc6, which the package depends on; the
# debian:bookworm-slim base of the image). A static binary needs nothing.
add_runtime_libs() {
    local root=$1 bin=$2 lib
    if ! ldd "$bin" >/dev/null 2>&1; then
        return 0 # "not a dynamic executable"
    fi
    for lib in $(ldd "$bin" | grep -o '/[^ )]*'); do
        mkdir -p "$root$(dirname "$lib")"
        cp -L "$lib" "$root$lib"
    done
}

# in_root ROOT UID:GID COMMAND...: runs COMMAND inside ROOT as UID:GID, with an empty
# environment but PATH, HOME and the NAME=value words in IN_ROOT_ENV. As root this is
# chroot(8); otherwise an unprivileged user namespace (unshare -r), where the command runs
# as the namespace's root instead of UID:GID.
in_root() {
    local root=$1 user=$2
    shift 2
    local chroot unshare
    chroot=$(PATH=$PATH:/usr/sbin:/sbin command -v chroot) || die "chroot(8) not found"
    if [ "$(id -u)" = 0 ]; then
        env -i PATH=/usr/bin:/bin HOME=/ ${IN_ROOT_ENV:-} "$chroot" --userspec="$user" "$root" "$@"
    elif unshare=$(command -v unshare) && "$unshare" -r true 2>/dev/null; then
        env -i PATH=/usr/bin:/bin HOME=/ ${IN_ROOT_ENV:-} "$unshare" -r "$chroot" "$root" "$@"
    else
        die "running a command in a scratch root needs root or unprivileged user namespaces"
    fi
}
