#!/usr/bin/env bash
# Proves the container image's filesystem layout without Docker (there is no daemon on the
# development machine): builds, in a temporary directory, the tree the runtime stage of
# deploy/Dockerfile produces, by following its COPY lines, and runs in it (chroot, as the
# image's USER) what the image runs:
#   - check-config of the image's /etc/hums/hums.toml (its includes are absolute
#     /usr/share/hums/... paths and so resolve inside the tree only), and of every
#     example shipped in /usr/share/hums/examples,
#   - `--version`, and the default command (CMD ["demo", "--status-page", ...]) for a few
#     seconds, with the HEALTHCHECK command (`hums health` against the demo's status
#     page) run while it runs: it must pass.
# It also checks USER (not root), VOLUME /var/lib/hums (owned by USER, mode 0700) and
# that .dockerignore excludes target/ and .git but none of the files the image is built from.
#
# The binary stands in for the build stage's: HUMS_BIN (default target/debug/hums, built
# with the default features as the image's is; read only). The RUN lines cannot be
# replayed here; their effects that matter are emulated and named below (the user's state
# directory; ca-certificates; the base image's libc, copied from this machine).
#
# Usage: scripts/test-container-layout.sh [--bin PATH] [--dockerfile PATH]   (KEEP=1 keeps the tree,
#        DEMO_SECONDS=0 skips running the demo). Needs root, or unprivileged user
#        namespaces (then the commands run as the namespace's root, not USER).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
# shellcheck source=scripts/lib/scratch-root.sh
. scripts/lib/scratch-root.sh

bin=${HUMS_BIN:-target/debug/hums}
dockerfile=deploy/Dockerfile
while [ $# -gt 0 ]; do
    case $1 in
    --bin) bin=$2; shift 2 ;;
    --dockerfile) dockerfile=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
    esac
done
demo_seconds=${DEMO_SECONDS:-10}
[ -x "$bin" ] || die "$bin is not an executable hums binary (build it, or pass --bin)"
[ -f "$dockerfile" ] || die "$dockerfile not found"

# The Dockerfile's instructions, one per line (continuations joined, comments dropped).
instructions=$(sed -e '/^[[:space:]]*#/d' "$dockerfile" | sed -e ':a' -e '/\\$/N; s/\\\n//; ta')

# JSON array of strings (no escapes) -> one element per line.
json_words() {
    sed -e 's/^[[:space:]]*\[//' -e 's/\][[:space:]]*$//' <<<"$1" | tr ',' '\n' \
        | sed -e 's/^[[:space:]]*"//' -e 's/"[[:space:]]*$//'
}

# Is PATH (relative to the build context) excluded by .dockerignore? Plain patterns only:
# a pattern excludes a path it matches or any path under one it matches.
ignored() {
    local path=$1 pat prefix
    [ -f .dockerignore ] || return 1
    while IFS= read -r pat || [ -n "$pat" ]; do
        pat=${pat%%#*}
        pat=$(echo "$pat" | sed -e 's/[[:space:]]*$//' -e 's:/*$::' -e 's:^/::')
        [ -n "$pat" ] || continue
        case $pat in '!'*) continue ;; esac
        prefix=""
        local IFS_OLD=$IFS part
        IFS=/
        for part in $path; do
            prefix=${prefix:+$prefix/}$part
            # shellcheck disable=SC2053 # $pat is a glob on purpose
            if [[ $prefix == $pat ]]; then IFS=$IFS_OLD; return 0; fi
        done
        IFS=$IFS_OLD
    done <.dockerignore
    return 1
}

step ".dockerignore"
ignored target/debug/hums || die ".dockerignore does not exclude target/"
ignored .git/HEAD || die ".dockerignore does not exclude .git"
# Every source any stage COPYs from the build context must be in it.
while read -r src; do
    ignored "$src" && die "$dockerfile copies $src, which .dockerignore excludes"
    [ -e "$src" ] || die "$dockerfile copies $src, which does not exist"
    echo "    in the context: $src"
done < <(grep -E '^COPY ' <<<"$instructions" | grep -v -- '--from=' \
    | awk '{ for (i = 2; i < NF; i++) if ($i !~ /^--/) print $i }' | sed 's:^\./::')

# The runtime stage: everything after the last FROM.
runtime=$(awk '/^FROM /{ buf = "" } { buf = buf $0 "\n" } END { printf "%s", buf }' <<<"$instructions")
grep -q '^FROM debian:' <<<"$runtime" || echo "note: the runtime stage is not FROM debian:*; libc is still taken from this machine"

new_root
root=$SCRATCH_ROOT
step "building the image's tree in $root"

user="" workdir="" volumes="" health="" entrypoint="" cmd=""
while IFS= read -r line; do
    read -r op rest <<<"$line"
    case $op in
    COPY)
        # shellcheck disable=SC2086 # word splitting wanted
        set -- $rest
        from=""
        while [ $# -gt 0 ] && [ "${1#--}" != "$1" ]; do
            case $1 in --from=*) from=${1#--from=} ;; --chown=* | --chmod=*) ;; *) die "COPY flag $1 not understood" ;; esac
            shift
        done
        [ $# -eq 2 ] || die "COPY with $# paths (keep runtime COPYs to one source, one destination): $line"
        src=$1 dst=$2
        if [ -n "$from" ]; then
            [ "$(basename "$src")" = hums ] || die "COPY --from=$from of $src: only the hums binary is known"
            mkdir -p "$root$(dirname "$dst")"
            cp "$bin" "$root$dst"
            echo "    $bin (for --from=$from $src) -> $dst"
        elif [ -d "$src" ]; then
            mkdir -p "$root$dst"
            cp -R "$src/." "$root$dst/"
            echo "    $src/ -> $dst/"
        else
            case $dst in */) mkdir -p "$root$dst"; dst=$dst$(basename "$src") ;; *) mkdir -p "$root$(dirname "$dst")" ;; esac
            cp "$src" "$root$dst"
            echo "    $src -> $dst"
        fi
        ;;
    USER) user=$rest ;;
    WORKDIR) workdir=$rest ;;
    VOLUME)
        case $rest in '['*) volumes="$volumes $(json_words "$rest" | tr '\n' ' ')" ;; *) volumes="$volumes $rest" ;; esac
        ;;
    ENV)
        # ENV NAME=value (one pair per line, no quoting): applied to every command below.
        case $rest in *=*) IN_ROOT_ENV="${IN_ROOT_ENV:-} $rest" ;; *) die "ENV form not understood: $line" ;; esac
        ;;
    HEALTHCHECK) health=$(sed -n 's/.* CMD \(\[.*\]\)$/\1/p' <<<"$rest") ;;
    ENTRYPOINT) entrypoint=$rest ;;
    CMD) cmd=$rest ;;
    esac
done <<<"$runtime"

# Emulated RUN effects (each checked to still be in the Dockerfile).
[ -n "$user" ] || die "the runtime stage sets no USER: the image would run as root"
uid=${user%%:*}
gid=${user#*:}
[ "$gid" != "$user" ] || gid=$uid
case $uid in 0 | root) die "USER is root" ;; *[!0-9]*) die "USER $user is not numeric (uid:gid)" ;; esac
grep -Eq -- "useradd .*--uid $uid( |$)" <<<"$runtime" || die "no RUN creates a user with uid $uid"
grep -q 'install -d -o hums -g hums -m 0700 /var/lib/hums' <<<"$runtime" \
    || die "the RUN creating /var/lib/hums (hums, 0700) has changed: update this script"
mkdir -p "$root/var/lib/hums"
chown "$uid:$gid" "$root/var/lib/hums"
chmod 0700 "$root/var/lib/hums"
echo "    RUN: /var/lib/hums owned by $uid:$gid, 0700"
grep -q 'ca-certificates' <<<"$runtime" || die "the runtime stage no longer installs ca-certificates"
mkdir -p "$root/etc/ssl/certs"
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/" 2>/dev/null \
    || echo "note: no /etc/ssl/certs/ca-certificates.crt here; the demo may fail to build its HTTP client"
echo "    RUN: ca-certificates (this machine's bundle)"
add_runtime_libs "$root" "$root/usr/bin/hums"
echo "    base image: $(ldd "$root/usr/bin/hums" 2>/dev/null | grep -c '=>\|ld-linux') libraries from this machine"

step "checks"
echo "    ENV:${IN_ROOT_ENV:- (none)}"
[[ " $volumes " == *" /var/lib/hums "* ]] || die "no VOLUME /var/lib/hums (volumes:$volumes)"
echo "    VOLUME /var/lib/hums"
[ "$workdir" = /var/lib/hums ] || die "WORKDIR is '$workdir', not /var/lib/hums"
[ "$(stat -c '%u:%g %a' "$root/var/lib/hums")" = "$uid:$gid 700" ] || die "/var/lib/hums is not $uid:$gid 0700"
echo "    USER $user, WORKDIR /var/lib/hums owned by it, 0700"
[ -f "$root/etc/hums/hums.toml" ] || die "no /etc/hums/hums.toml in the image"
grep -q '^include = \["/usr/share/hums/classes/' "$root/etc/hums/hums.toml" \
    || die "/etc/hums/hums.toml does not include the class libraries from /usr/share/hums/classes"
ls "$root/usr/share/hums/models/"*.json >/dev/null || die "no models in /usr/share/hums/models"
ls "$root/usr/share/hums/classes/"*.toml >/dev/null || die "no class libraries in /usr/share/hums/classes"

mapfile -t ep < <(json_words "$entrypoint")
[ "${ep[0]:-}" = /usr/bin/hums ] || die "ENTRYPOINT is $entrypoint, expected [\"/usr/bin/hums\"]"
echo "    \$ hums --version (as $user)"
in_root "$root" "$user" /usr/bin/hums --version | sed 's/^/      /'

[ -n "$health" ] || die "no HEALTHCHECK with an exec-form CMD"
mapfile -t hc < <(json_words "$health")
out=$(in_root "$root" "$user" /usr/bin/hums check-config /etc/hums/hums.toml 2>&1) \
    || die "check-config /etc/hums/hums.toml: $out"
echo "    check-config /etc/hums/hums.toml: $out"

for f in "$root"/usr/share/hums/examples/*.toml; do
    name=/usr/share/hums/examples/$(basename "$f")
    out=$(in_root "$root" "$user" /usr/bin/hums check-config "$name" 2>&1) || die "check-config $name: $out"
    echo "    check-config $name: $out"
done

mapfile -t cm < <(json_words "$cmd")
[ "${cm[0]:-}" = demo ] || die "CMD is $cmd, expected [\"demo\", ...] (the honest default)"
in_root "$root" "$user" /usr/bin/hums --help | grep -q '^  demo ' \
    || die "$bin has no demo command: the image is built with default features, so must this binary be"
if [ "$demo_seconds" != 0 ]; then
    echo "    CMD: \$ hums ${cm[*]} --duration $demo_seconds (as $user; a short run may end before every fault, so FAIL is allowed)"
    demo_out=$(mktemp)
    set +e
    in_root "$root" "$user" /usr/bin/hums "${cm[@]}" --duration "$demo_seconds" >"$demo_out" 2>&1 &
    demo_pid=$!
    healthy=no
    for _ in $(seq 1 $((demo_seconds * 4))); do
        if hc_out=$(in_root "$root" "$user" "${hc[@]}" 2>&1); then healthy=yes; break; fi
        sleep 0.25
    done
    echo "    HEALTHCHECK while CMD runs: \$ ${hc[*]} (as $user): $healthy ${hc_out:-}"
    wait "$demo_pid"
    rc=$?
    out=$(cat "$demo_out"); rm -f "$demo_out"
    set -e
    [ "$healthy" = yes ] || die "the HEALTHCHECK command never passed while CMD ran"
    { grep -E '^(hums demo:|readings:|result:)' <<<"$out" || true; } | sed 's/^/      /'
    case $rc in 0 | 1) ;; *) echo "$out" | tail -20; die "hums demo exited $rc" ;; esac
    grep -q '^hums demo:' <<<"$out" || { echo "$out" | tail -20; die "hums demo printed no summary"; }
    grep -q 'work orders delivered: [1-9]' <<<"$out" \
        || echo "note: no work order delivered in $demo_seconds s (try DEMO_SECONDS=30)"
fi

echo "PASS: the image layout works (USER $user, VOLUME /var/lib/hums, CMD demo with HEALTHCHECK passing)"
