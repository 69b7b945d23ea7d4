#!/usr/bin/env bash
# Builds hums's release artifacts end to end and prints their sizes and build times:
#   1. the Debian package (cargo-deb, [package.metadata.deb] in Cargo.toml): the production
#      daemon (--no-default-features), its systemd unit, /etc/hums/hums.toml (conffile),
#      class libraries, models and examples under /usr/share/hums, a `hums` system user;
#   2. static musl binaries for x86_64 and aarch64 (cargo-zigbuild; --release
#      --no-default-features), stripped, each also as a .tar.gz with the README, LICENSE and
#      share/hums/{classes,models,examples}.
# Everything lands in the output directory with a SHA256SUMS file. Check the results with
# scripts/test-packages.sh. Not run by CI: a cold run took 39 minutes on a 2-core VM
# (polars, thin LTO, three targets: about 11, 13 and 15 minutes).
#
# Usage: scripts/package.sh [--deb] [--static] [--out DIR]     (neither: both)
#
# Missing tools are installed, pinned (override with the variables below):
#   cargo-deb       cargo install --locked     CARGO_DEB_VERSION=3.8.0
#   ziglang         pip, into a venv           ZIGLANG_VERSION=0.17.1
#   cargo-zigbuild  pip, into the same venv    CARGO_ZIGBUILD_VERSION=0.24.1
#   musl targets    rustup target add
# Environment: CARGO_TARGET_DIR (default: target), NICE (default 19: builds run under
# `nice -n 19` so other work keeps the cores), TOOLS_DIR (default: $CARGO_TARGET_DIR/tools,
# where the venv and cargo-deb's build go), STATIC_TARGETS (default: both musl triples).
# Rerunning is safe: tools are not reinstalled, builds are incremental, outputs replaced.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

want_deb=0 want_static=0 out=""
while [ $# -gt 0 ]; do
    case $1 in
    --deb) want_deb=1; shift ;;
    --static) want_static=1; shift ;;
    --out) out=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
if [ $want_deb = 0 ] && [ $want_static = 0 ]; then want_deb=1 want_static=1; fi

target_dir=${CARGO_TARGET_DIR:-$repo/target}
case $target_dir in /*) ;; *) target_dir=$repo/$target_dir ;; esac
export CARGO_TARGET_DIR=$target_dir
out=${out:-$target_dir/dist}
tools=${TOOLS_DIR:-$target_dir/tools}
nice_level=${NICE:-19}
static_targets=${STATIC_TARGETS:-x86_64-unknown-linux-musl aarch64-unknown-linux-musl}
CARGO_DEB_VERSION=${CARGO_DEB_VERSION:-3.8.0}
ZIGLANG_VERSION=${ZIGLANG_VERSION:-0.17.1}
CARGO_ZIGBUILD_VERSION=${CARGO_ZIGBUILD_VERSION:-0.24.1}

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
[ -n "$version" ] || { echo "no version in Cargo.toml" >&2; exit 1; }
mkdir -p "$out" "$tools"

step() { echo "==> $*"; }
run() { echo "+ $*"; "$@"; }
niced() { run nice -n "$nice_level" "$@"; }
human() { numfmt --to=iec-i --suffix=B "$1" 2>/dev/null || echo "$1 bytes"; }
summary=()
# timed LABEL COMMAND...: runs COMMAND, records its wall time.
timed() {
    local label=$1 start rc=0
    shift
    start=$(date +%s)
    "$@" || rc=$?
    local secs=$(($(date +%s) - start))
    summary+=("$(printf '%-52s %4dm%02ds' "$label" $((secs / 60)) $((secs % 60)))")
    return $rc
}

command -v cargo >/dev/null || { echo "cargo not found (install Rust with rustup)" >&2; exit 1; }
command -v cc >/dev/null || command -v gcc >/dev/null \
    || { echo "no C compiler: aws-lc, SQLite and zstd are built with cc (apt-get install build-essential)" >&2; exit 1; }

# --- tools -------------------------------------------------------------------------------
ensure_cargo_deb() {
    if cargo deb --version >/dev/null 2>&1; then
        echo "cargo-deb: $(cargo deb --version)"
        return
    fi
    step "installing cargo-deb $CARGO_DEB_VERSION"
    CARGO_TARGET_DIR=$tools/cargo-install niced cargo install cargo-deb --version "$CARGO_DEB_VERSION" --locked
}

ensure_zigbuild() {
    # A venv of ours first on PATH, if an earlier run made one.
    if [ -x "$tools/venv/bin/cargo-zigbuild" ]; then
        export PATH="$tools/venv/bin:$PATH"
    fi
    if command -v cargo-zigbuild >/dev/null && { command -v zig >/dev/null || python3 -c 'import ziglang' 2>/dev/null; }; then
        echo "cargo-zigbuild: $(cargo-zigbuild --version); zig: $(zig version 2>/dev/null || python3 -m ziglang version)"
        return
    fi
    step "installing ziglang $ZIGLANG_VERSION and cargo-zigbuild $CARGO_ZIGBUILD_VERSION (PyPI) into $tools/venv"
    if [ ! -x "$tools/venv/bin/pip" ]; then
        python3 -m venv "$tools/venv" || {
            echo "python3 -m venv failed (Debian: apt-get install python3-venv)" >&2
            exit 1
        }
    fi
    run "$tools/venv/bin/pip" install --quiet "ziglang==$ZIGLANG_VERSION" "cargo-zigbuild==$CARGO_ZIGBUILD_VERSION"
    export PATH="$tools/venv/bin:$PATH"
    echo "cargo-zigbuild: $(cargo-zigbuild --version); zig: $(python3 -m ziglang version)"
}

ensure_targets() {
    local installed t
    command -v rustup >/dev/null || { echo "rustup not found: cannot add the musl targets" >&2; exit 1; }
    installed=$(rustup target list --installed)
    for t in $static_targets; do
        grep -qx "$t" <<<"$installed" || run rustup target add "$t"
    done
}

# A strip that understands the target's ELF: GNU strip handles x86-64; for aarch64 the
# cross binutils' strip, else LLVM's (llvm-strip from rustup's llvm-tools, or the
# rust-objcopy that recent toolchains ship), else GNU strip if it can.
strip_for() {
    local triple=$1 file=$2 arch tool sysroot rustbin
    arch=${triple%%-*}
    sysroot=$(rustc --print sysroot)
    rustbin=$(ls -d "$sysroot"/lib/rustlib/*/bin 2>/dev/null | head -n1 || true)
    for tool in "$arch-linux-gnu-strip" "$rustbin/llvm-strip" \
        "env LD_LIBRARY_PATH=$sysroot/lib $rustbin/rust-objcopy --strip-all" strip; do
        command -v "${tool%% *}" >/dev/null || continue
        # shellcheck disable=SC2086 # "$tool" may carry an option
        if $tool "$file" 2>/dev/null; then
            echo "    stripped with ${tool##*/}"  # the tool's name (and option)
            return
        fi
    done
    echo "no strip for $arch found: rustup component add llvm-tools, or apt-get install binutils-$arch-linux-gnu" >&2
    return 1
}

# --- 1. Debian package -------------------------------------------------------------------
build_deb() {
    ensure_cargo_deb
    step "Debian package (release, --no-default-features via [package.metadata.deb])"
    # cargo deb prints the package's path on stdout; the build's progress goes to stderr.
    local paths=$tools/cargo-deb.out
    # The binary first: its man page and shell completions go into the package
    # (assets target/release/hums.1 and hums.{bash,zsh,fish} in Cargo.toml).
    timed "deb binary (cargo build, release)" \
        niced cargo build --release --locked --no-default-features
    local bin=$target_dir/release/hums sh
    "$bin" man >"$target_dir/release/hums.1"
    for sh in bash zsh fish; do "$bin" completions "$sh" >"$target_dir/release/hums.$sh"; done
    timed "deb (cargo deb --no-build)" niced cargo deb --locked --no-build --output "$out/" >"$paths" \
        || { echo "cargo deb failed" >&2; exit 1; }
    deb=$(tail -n1 "$paths")
    [ -f "$deb" ] || deb=$(ls -t "$out"/hums_"$version"-*_*.deb | head -n1)
    echo "deb: $deb"
}

# --- 2. static musl binaries -------------------------------------------------------------
build_static() {
    ensure_zigbuild
    ensure_targets
    local t bin dest stage
    for t in $static_targets; do
        step "static binary for $t (cargo zigbuild --release --no-default-features)"
        timed "static $t (cargo zigbuild)" \
            niced cargo zigbuild --release --locked --no-default-features --target "$t"
        bin=$target_dir/$t/release/hums
        dest=$out/hums-$version-$t
        cp "$bin" "$dest"
        strip_for "$t" "$dest"
        file "$dest" | sed 's/^/    /'
        stage=$tools/stage/hums-$version-$t
        rm -rf "$stage"
        mkdir -p "$stage/share/hums"
        cp "$dest" "$stage/hums"
        cp README.md LICENSE "$stage/"
        cp -R configs/classes "$stage/share/hums/classes"
        cp -R models "$stage/share/hums/models"
        cp -R configs/examples "$stage/share/hums/examples"
        tar -C "$(dirname "$stage")" -czf "$dest.tar.gz" "$(basename "$stage")"
    done
}

if [ $want_deb = 1 ]; then build_deb; fi
if [ $want_static = 1 ]; then build_static; fi

step "artifacts in $out"
(
    cd "$out"
    rm -f SHA256SUMS
    files=$(ls hums_"$version"-*.deb hums-"$version"-* 2>/dev/null | grep -v '\.sha256$' || true)
    [ -n "$files" ] || { echo "nothing built" >&2; exit 1; }
    # shellcheck disable=SC2086
    sha256sum $files >SHA256SUMS
    for f in $files; do
        printf '  %-58s %10s  (%s bytes)\n' "$f" "$(human "$(stat -c %s "$f")")" "$(stat -c %s "$f")"
    done
)
if [ ${#summary[@]} -gt 0 ]; then
    step "build times (wall clock; cold only on a fresh CARGO_TARGET_DIR)"
    printf '  %s\n' "${summary[@]}"
fi
