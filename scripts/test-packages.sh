#!/usr/bin/env bash
# Checks what scripts/package.sh built (not run by CI: it needs the release artifacts).
#
# The Debian package, without touching this system:
#   - control: Depends (libc6, adduser, ca-certificates), conffile /etc/hums/hums.toml,
#     maintainer scripts parse and create the `hums` user in dialout and /var/lib/hums 0700;
#   - contents: binary, unit, default config, class libraries, models, examples, docs;
#   - the unit runs /usr/bin/hums as User=hums (no DynamicUser), UMask=0077,
#     RestartPreventExitStatus=2 78, StateDirectory=hums;
#   - extracted into a scratch root (dpkg-deb -x), the binary is the production build
#     (no `demo`) and, chrooted there as nobody, `hums check-config /etc/hums/hums.toml` and
#     every /usr/share/hums/examples/*.toml pass: the absolute /usr/share/hums includes
#     resolve inside the root as they do on an installed system.
# With --install (root; changes this system, then undoes it): dpkg -i, the user, its groups,
#   /var/lib/hums, `hums check-config /etc/hums/hums.toml` as root and as hums, a reinstall
#   keeping an edited conffile, dpkg -r (config and state kept), dpkg --purge (both gone),
#   and the `hums` user and group removed again if this script created them.
# The static binaries: `file` says statically linked, stripped, right architecture; the
#   x86_64 one runs here, the aarch64 one under qemu-aarch64-static (Debian's
#   qemu-user-static, installed with apt-get if missing and root): `--version` and
#   `check-config` of every configs/examples/*.toml.
#
# Usage: scripts/test-packages.sh [--dir DIR] [--install] [--no-deb] [--no-static]
#   DIR: where package.sh put the artifacts (default: ${CARGO_TARGET_DIR:-target}/dist).
# KEEP=1 keeps scratch roots. Exit 0 only if every check passed.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
# shellcheck source=scripts/lib/scratch-root.sh
. scripts/lib/scratch-root.sh

target_dir=${CARGO_TARGET_DIR:-$repo/target}
dir=$target_dir/dist install=0 do_deb=1 do_static=1
while [ $# -gt 0 ]; do
    case $1 in
    --dir) dir=$2; shift 2 ;;
    --install) install=1; shift ;;
    --no-deb) do_deb=0; shift ;;
    --no-static) do_static=0; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
    esac
done
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
ok() { echo "    ok: $*"; }

# --- the Debian package, read-only --------------------------------------------------------
test_deb_contents() {
    deb=$(ls -t "$dir"/hums_"$version"-*_*.deb 2>/dev/null | head -n1 || true)
    [ -n "$deb" ] || die "no hums_${version}-*.deb in $dir (run scripts/package.sh --deb)"
    step "Debian package $deb ($(stat -c %s "$deb") bytes)"
    command -v dpkg-deb >/dev/null || die "dpkg-deb not found"

    local info listing ctl
    info=$(dpkg-deb --info "$deb")
    grep -q '^ Package: hums$' <<<"$info" || die "Package is not hums"
    local depends
    depends=$(sed -n 's/^ Depends: //p' <<<"$info")
    for d in libc6 adduser ca-certificates; do
        grep -q "\b$d\b" <<<"$depends" || die "Depends ($depends) lacks $d"
    done
    ok "Depends: $depends"

    ctl=$(mktemp -d)
    SCRATCH_ROOTS="${SCRATCH_ROOTS:-} $ctl"
    trap cleanup_roots EXIT
    dpkg-deb -e "$deb" "$ctl/DEBIAN"
    grep -qx /etc/hums/hums.toml "$ctl/DEBIAN/conffiles" || die "/etc/hums/hums.toml is not a conffile"
    ok "conffiles: $(tr '\n' ' ' <"$ctl/DEBIAN/conffiles")"
    for s in preinst postinst prerm postrm; do
        [ -f "$ctl/DEBIAN/$s" ] || continue
        sh -n "$ctl/DEBIAN/$s" || die "$s does not parse"
    done
    grep -q 'adduser --system' "$ctl/DEBIAN/postinst" || die "postinst does not create the hums user"
    grep -q 'adduser --quiet hums dialout' "$ctl/DEBIAN/postinst" || die "postinst does not add hums to dialout"
    grep -q 'chmod 0700 /var/lib/hums' "$ctl/DEBIAN/postinst" || die "postinst does not make /var/lib/hums 0700"
    ok "maintainer scripts: $(ls "$ctl/DEBIAN" | tr '\n' ' ')"

    listing=$(dpkg-deb -c "$deb" | awk '{ print $1, $2, $6 }')
    local want
    for want in ./usr/bin/hums ./etc/hums/hums.toml ./usr/share/hums/classes/pump.toml \
        ./usr/share/hums/classes/instrument.toml ./usr/share/hums/models/pump.json \
        ./usr/share/hums/examples/rest.toml ./usr/share/doc/hums/README.md \
        ./usr/share/doc/hums/LICENSE ./usr/share/doc/hums/copyright \
        ./usr/share/man/man1/hums.1 ./usr/share/bash-completion/completions/hums; do
        grep -q " $want\$" <<<"$listing" || die "the package lacks $want"
    done
    grep -Eq " \./(usr/)?lib/systemd/system/hums\.service\$" <<<"$listing" || die "the package lacks the systemd unit"
    grep -Eq '^-rwxr-xr-x (root/root|0/0) \./usr/bin/hums$' <<<"$listing" || die "/usr/bin/hums is not root-owned 0755"
    ok "contents: binary, unit, conffile, classes, models, examples, docs ($(wc -l <<<"$listing") entries)"

    new_root
    root=$SCRATCH_ROOT
    dpkg-deb -x "$deb" "$root"
    local unit
    for unit in "$root"/usr/lib/systemd/system/hums.service "$root"/lib/systemd/system/hums.service; do
        [ -f "$unit" ] && break
    done
    grep -qx 'ExecStart=/usr/bin/hums run' "$unit" || die "unit: ExecStart (the default config and conf.d)"
    grep -qx 'Type=notify' "$unit" || die "unit: not Type=notify (readiness and watchdog)"
    grep -q '^WatchdogSec=' "$unit" || die "unit: no WatchdogSec"
    grep -q '^ExecReload=.*-HUP' "$unit" || die "unit: no ExecReload by SIGHUP"
    grep -qx 'User=hums' "$unit" || die "unit: no User=hums"
    grep -q '^DynamicUser' "$unit" && die "unit: still DynamicUser"
    grep -qx 'UMask=0077' "$unit" || die "unit: no UMask=0077"
    grep -qx 'StateDirectory=hums' "$unit" || die "unit: no StateDirectory=hums"
    grep -qx 'SupplementaryGroups=dialout' "$unit" || die "unit: no SupplementaryGroups=dialout"
    grep -Eqx 'RestartPreventExitStatus=(.* )?78( .*)?' "$unit" || die "unit: RestartPreventExitStatus lacks 78 (configuration errors)"
    ok "unit ${unit#"$root"}: /usr/bin/hums as hums, UMask=0077, $(grep '^RestartPreventExitStatus' "$unit")"

    add_runtime_libs "$root" "$root/usr/bin/hums"
    in_root "$root" 65534:65534 /usr/bin/hums --help | grep -q '^  demo ' \
        && die "/usr/bin/hums has the demo command: the package must hold the --no-default-features build"
    ok "$(in_root "$root" 65534:65534 /usr/bin/hums --version) (production build: no demo command)"
    local out f
    out=$(in_root "$root" 65534:65534 /usr/bin/hums check-config /etc/hums/hums.toml 2>&1) \
        || die "check-config /etc/hums/hums.toml in the extracted package: $out"
    ok "scratch root, as nobody: hums check-config /etc/hums/hums.toml: $out"
    for f in "$root"/usr/share/hums/examples/*.toml; do
        f=/usr/share/hums/examples/$(basename "$f")
        out=$(in_root "$root" 65534:65534 /usr/bin/hums check-config "$f" 2>&1) || die "check-config $f: $out"
    done
    ok "scratch root: check-config of every /usr/share/hums/examples/*.toml"
}

# --- the Debian package, installed on this system -----------------------------------------
installed_by_us=0 user_created=0 group_created=0 state_before=""
undo_install() {
    if [ $installed_by_us = 1 ] && dpkg-query -W -f='${Status}' hums 2>/dev/null | grep -q 'install\|config-files\|deinstall'; then
        dpkg --purge hums >/dev/null 2>&1 || true
    fi
    if [ $user_created = 1 ] && getent passwd hums >/dev/null; then userdel hums; fi
    if [ $group_created = 1 ] && getent group hums >/dev/null; then groupdel hums; fi
    # An empty /var/lib/hums that was here before (purge removes it) comes back as it was.
    if [ -n "$state_before" ] && [ ! -e /var/lib/hums ]; then
        local owner=${state_before%% *}
        install -d -o "${owner%%:*}" -g "${owner#*:}" -m "${state_before##* }" /var/lib/hums
    fi
    cleanup_roots
}

test_deb_install() {
    step "installing $deb on this system (--install)"
    [ "$(id -u)" = 0 ] || die "--install needs root"
    if dpkg-query -W -f='${Status}' hums 2>/dev/null | grep -q 'installed'; then
        die "a hums package is already installed here; remove it first (this test would replace it)"
    fi
    if [ -e /var/lib/hums ]; then
        [ -z "$(ls -A /var/lib/hums)" ] || die "/var/lib/hums exists and is not empty: purging the package would delete it"
        state_before=$(stat -c '%u:%g %a' /var/lib/hums)
        echo "    note: an empty /var/lib/hums ($state_before) exists; it is restored afterwards"
    fi
    getent passwd hums >/dev/null || user_created=1
    getent group hums >/dev/null || group_created=1
    installed_by_us=1
    trap undo_install EXIT

    dpkg -i "$deb" || die "dpkg -i failed (missing dependencies? apt-get install ./$(basename "$deb") resolves them)"
    dpkg-query -W -f='${Status} ${Version}\n' hums | sed 's/^/    /'
    local pw groups st out
    pw=$(getent passwd hums) || die "no hums user"
    groups=$(id -nG hums)
    [[ " $groups " == *" dialout "* ]] || die "hums is not in dialout ($groups)"
    [ "$(cut -d: -f3 <<<"$pw")" -lt 1000 ] || die "hums is not a system user ($pw)"
    ok "user: $pw; groups: $groups"
    st=$(stat -c '%U:%G %a' /var/lib/hums)
    [ "$st" = "hums:hums 700" ] || die "/var/lib/hums is $st, not hums:hums 700"
    ok "/var/lib/hums: $st"
    dpkg-query -W -f='${Conffiles}\n' hums | grep -q '/etc/hums/hums.toml' || die "dpkg does not list the conffile"
    out=$(hums check-config /etc/hums/hums.toml 2>&1) || die "check-config as root: $out"
    ok "installed, as root: hums check-config /etc/hums/hums.toml: $out"
    out=$(runuser -u hums -- /usr/bin/hums check-config /etc/hums/hums.toml 2>&1) || die "check-config as hums: $out"
    ok "installed, as hums: hums check-config /etc/hums/hums.toml: $out"
    out=$(cd / && hums check-config 2>&1) || die "check-config with the default path: $out"
    ok "installed: hums check-config (the default /etc/hums/hums.toml): $out"
    if command -v systemd-analyze >/dev/null; then
        if out=$(systemd-analyze verify hums.service 2>&1); then
            ok "systemd-analyze verify hums.service: clean"
        else
            echo "    note: systemd-analyze verify hums.service said (systemd may not be running here):"
            sed 's/^/      /' <<<"$out"
        fi
    fi

    echo "# edited by scripts/test-packages.sh" >>/etc/hums/hums.toml
    dpkg -i "$deb" >/dev/null || die "reinstalling failed (postinst not idempotent?)"
    grep -q 'edited by scripts/test-packages.sh' /etc/hums/hums.toml || die "reinstalling replaced the edited conffile"
    [ "$(stat -c '%U:%G %a' /var/lib/hums)" = "hums:hums 700" ] || die "/var/lib/hums changed on reinstall"
    ok "reinstall: edited conffile kept, user and /var/lib/hums unchanged"

    dpkg -r hums >/dev/null || die "dpkg -r failed"
    [ ! -e /usr/bin/hums ] || die "/usr/bin/hums still there after dpkg -r"
    [ -f /etc/hums/hums.toml ] && [ -d /var/lib/hums ] || die "dpkg -r removed the config or the state"
    dpkg --purge hums >/dev/null || die "dpkg --purge failed"
    [ ! -e /etc/hums/hums.toml ] && [ ! -e /var/lib/hums ] || die "purge left /etc/hums/hums.toml or /var/lib/hums"
    ok "dpkg -r keeps config and state; dpkg --purge removes both"
}

# --- the static binaries ------------------------------------------------------------------
test_static() {
    local t bin desc arch runner out f
    for t in x86_64-unknown-linux-musl aarch64-unknown-linux-musl; do
        bin=$dir/hums-$version-$t
        [ -f "$bin" ] || die "no $bin (run scripts/package.sh --static)"
        step "static binary $bin ($(stat -c %s "$bin") bytes)"
        desc=$(file -b "$bin")
        echo "    file: $desc"
        grep -Eq 'statically linked|static-pie linked' <<<"$desc" || die "not statically linked"
        grep -q 'not stripped' <<<"$desc" && die "not stripped"
        case $t in
        x86_64-*) arch=x86-64 runner=() ;;
        aarch64-*)
            arch=aarch64 runner=(qemu-aarch64-static)
            if ! command -v qemu-aarch64-static >/dev/null; then
                [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null \
                    || die "qemu-aarch64-static missing: apt-get install qemu-user-static"
                DEBIAN_FRONTEND=noninteractive apt-get install -y -q qemu-user-static >/dev/null \
                    || die "apt-get install qemu-user-static failed"
            fi
            ;;
        esac
        grep -q "$arch" <<<"$desc" || die "not an $arch binary"
        out=$("${runner[@]}" "$bin" --version) || die "--version failed"
        [ "$out" = "hums $version" ] || die "--version said '$out', not 'hums $version'"
        ok "\$ ${runner[*]:+${runner[*]} }hums --version: $out"
        "${runner[@]}" "$bin" --help | grep -q '^  demo ' && die "has the demo command (must be --no-default-features)"
        out=$("${runner[@]}" "$bin" check-config configs/examples/rest.toml 2>&1) || die "check-config rest.toml: $out"
        ok "\$ ${runner[*]:+${runner[*]} }hums check-config configs/examples/rest.toml: $out"
        for f in configs/examples/*.toml; do
            out=$("${runner[@]}" "$bin" check-config "$f" 2>&1) || die "check-config $f: $out"
        done
        ok "check-config of every configs/examples/*.toml"
    done
}

if [ $do_deb = 1 ]; then test_deb_contents; fi
if [ $do_deb = 1 ] && [ $install = 1 ]; then test_deb_install; fi
if [ $do_static = 1 ]; then test_static; fi
echo "PASS"
