#!/bin/bash
# SPDX-License-Identifier: MIT
#
# build-guest.sh OUTDIR
#
# Builds Orrery's default guest, entirely from Debian's archive on this
# machine, and puts the results in OUTDIR:
#
#   OUTDIR/Image              riscv64 Linux 6.1 (Debian's linux-source-6.1
#                             with guest/kernel.config), everything built in
#   OUTDIR/vmlinux            the same kernel as an ELF file with its symbols
#                             and DWARF, for gdb (see orrery-gdbstub)
#   OUTDIR/initramfs.cpio.gz  static busybox (Debian's source package with
#                             guest/busybox.config), guest/rootfs/, the
#                             orrery-guest binary (the orrery-guest-probe
#                             helper from guest/probe/ and the guest agent
#                             from guest/agent/, linked with json-c built
#                             from Debian's source package) and a small ext2
#                             image for the agent to freeze
#
# Every result is cached by a hash of its inputs (the config fragments, the
# helper and init sources, this script, and the dpkg versions of the source
# packages and of the cross toolchain) under
# ${XDG_CACHE_HOME:-~/.cache}/orrery/guest/, so only the first build on a
# machine pays. See guest/README.md.
#
# Environment:
#   ORRERY_GUEST_CACHE_DIR    cache directory (default: see above)
#   ORRERY_GUEST_JOBS         parallel make jobs (default: nproc)
#   ORRERY_GUEST_APT_REFRESH  1: run `apt-get update` on the private apt
#                             state even if it already has package lists
#   ORRERY_GUEST_KEEP_WORK    1: keep the kernel/busybox work trees
#
# Invoked by the `guest` target of guest/meson.build; also usable directly.

set -euo pipefail

readonly GUEST_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly TOP_DIR=$(dirname "$GUEST_DIR")
readonly CROSS=riscv64-linux-gnu-
readonly LINUX_PKG=linux-source-6.1
readonly LINUX_TARBALL=/usr/src/linux-source-6.1.tar.xz
# mtime of every file in the initramfs, so that it is reproducible.
readonly EPOCH=1704067200

log() {
        printf 'guest: %s\n' "$*"
}

die() {
        printf 'guest: error: %s\n' "$*" >&2
        exit 1
}

usage() {
        echo "usage: $0 OUTDIR" >&2
        exit 2
}

[[ $# -eq 1 && $1 != -* ]] || usage
START=$(date +%s)
readonly START

mkdir -p "$1"
OUTDIR=$(cd "$1" && pwd)
readonly OUTDIR

CACHE_ROOT=${ORRERY_GUEST_CACHE_DIR:-${XDG_CACHE_HOME:-${HOME:?neither XDG_CACHE_HOME nor HOME is set}/.cache}/orrery/guest}
JOBS=${ORRERY_GUEST_JOBS:-$(nproc)}
readonly CACHE_ROOT JOBS

TICKER_PID=
cleanup() {
        if [[ -n $TICKER_PID ]]; then
                kill "$TICKER_PID" 2>/dev/null || true
        fi
}
trap cleanup EXIT

# ---------------------------------------------------------------- helpers

sha() {
        sha256sum "$1" | cut -c1-64
}

# A short key from the input lines given as arguments.
key_of() {
        printf '%s\n' "$@" | sha256sum | cut -c1-20
}

pkg_version() {
        dpkg-query -W -f='${Version}' "$1" 2>/dev/null ||
                die "package $1 is not installed (see guest/build-deps.txt)"
}

# run_step LOG DESCRIPTION COMMAND...: runs COMMAND with its output in LOG,
# printing a line every 30 s so that a long step does not look stuck.
run_step() {
        local logfile=$1 desc=$2 start
        shift 2

        start=$(date +%s)
        (
                trap 'kill "$sleeper" 2>/dev/null; exit 0' TERM
                while :; do
                        sleep 30 >/dev/null 2>&1 &
                        sleeper=$!
                        wait "$sleeper"
                        log "  ... $desc: $(( $(date +%s) - start ))s"
                done
        ) &
        TICKER_PID=$!

        # Not 9>: the cache lock must not outlive this script in a child.
        if ! "$@" >>"$logfile" 2>&1 9>&-; then
                kill "$TICKER_PID" 2>/dev/null || true
                TICKER_PID=
                tail -n 60 "$logfile" >&2
                die "$desc failed (full log: $logfile)"
        fi

        kill "$TICKER_PID" 2>/dev/null || true
        wait "$TICKER_PID" 2>/dev/null || true
        TICKER_PID=
}

# apply_fragment FRAGMENT CONFIG: sets every symbol of FRAGMENT in CONFIG.
apply_fragment() {
        awk '
                function sym(line) {
                        if (line ~ /^CONFIG_[A-Za-z0-9_]+=/) {
                                sub(/=.*/, "", line)
                                return line
                        }
                        if (line ~ /^# CONFIG_[A-Za-z0-9_]+ is not set$/) {
                                sub(/^# /, "", line)
                                sub(/ is not set$/, "", line)
                                return line
                        }
                        return ""
                }
                FNR == NR {
                        s = sym($0)
                        if (s != "") {
                                want[s] = $0
                                order[++n] = s
                        }
                        next
                }
                {
                        s = sym($0)
                        if (s == "" || !(s in want))
                                print
                }
                END {
                        for (i = 1; i <= n; i++)
                                print want[order[i]]
                }
        ' "$1" "$2" >"$2.new"
        mv "$2.new" "$2"
}

# check_fragment FRAGMENT CONFIG: fails loudly unless every symbol of
# FRAGMENT ended up in CONFIG exactly as asked. Kconfig drops a symbol whose
# dependencies are missing without saying anything.
check_fragment() {
        local line symbol actual bad=()

        while IFS= read -r line; do
                case $line in
                CONFIG_*=*)
                        grep -qxF -- "$line" "$2" || {
                                symbol=${line%%=*}
                                actual=$(grep -E "^(# )?$symbol[= ]" "$2" || true)
                                bad+=("asked '$line', got '${actual:-nothing}'")
                        }
                        ;;
                "# CONFIG_"*" is not set")
                        symbol=${line#\# }
                        symbol=${symbol%% *}
                        if actual=$(grep -E "^$symbol=" "$2"); then
                                bad+=("asked '$line', got '$actual'")
                        fi
                        ;;
                esac
        done <"$1"

        if [[ ${#bad[@]} -gt 0 ]]; then
                printf 'guest: error: %s\n' "${bad[@]}" >&2
                die "$(basename "$1") was not applied as written to $2"
        fi
}

# publish TMPDIR DIR: makes a finished result visible in one rename.
publish() {
        rm -rf "$2"
        mv "$1" "$2"
}

# ------------------------------------------------------------ preparation

missing=()
for tool in "${CROSS}gcc" cc make cmake bc bison flex gzip xz bzip2 \
            tar patch awk sha256sum flock dpkg-query dpkg-source apt-get mke2fs; do
        command -v "$tool" >/dev/null || missing+=("$tool")
done
[[ -r $LINUX_TARBALL ]] || missing+=("$LINUX_TARBALL")
[[ ${#missing[@]} -eq 0 ]] ||
        die "missing: ${missing[*]} (install the packages in guest/build-deps.txt)"

mkdir -p "$CACHE_ROOT"/{parts,work,src,logs}
exec 9>"$CACHE_ROOT/lock"
if ! flock -n 9; then
        log "waiting for another guest build to finish (lock: $CACHE_ROOT/lock)"
        flock 9
fi

# Holding the lock, anything half-built is left over from an interrupted run.
stale=("$CACHE_ROOT"/*.tmp "$CACHE_ROOT"/{parts,src,work}/*.tmp)
for d in "${stale[@]}"; do
        [[ -e $d ]] || continue
        log "removing $d, left over by an interrupted build"
        rm -rf "$d"
done

# Pin the build timestamps and names that end up in the binaries (uname -v,
# busybox's banner), so that equal inputs give equal outputs.
export SOURCE_DATE_EPOCH=$EPOCH
export KBUILD_BUILD_TIMESTAMP="@$EPOCH"
export KBUILD_BUILD_USER=orrery KBUILD_BUILD_HOST=orrery
export LC_ALL=C

GCC_PKG=$(dpkg-query -S "$(readlink -f "$(command -v "${CROSS}gcc")")" 2>/dev/null | cut -d: -f1 | head -n1)
[[ -n $GCC_PKG ]] || die "cannot tell which package provides ${CROSS}gcc"
TOOLCHAIN="toolchain"
for pkg in gcc-riscv64-linux-gnu "$GCC_PKG" binutils-riscv64-linux-gnu \
           libc6-dev-riscv64-cross linux-libc-dev-riscv64-cross; do
        TOOLCHAIN+=" $pkg=$(pkg_version "$pkg")"
done
RECIPE="recipe $(sha "$GUEST_DIR/build-guest.sh")"
readonly GCC_PKG TOOLCHAIN RECIPE

# ------------------------------------------ private apt (busybox, json-c)

APT_DIR=$CACHE_ROOT/apt
export APT_CONFIG=$APT_DIR/apt.conf

# Writes a private apt configuration whose only sources are `deb-src`
# twins of the machine's Debian `deb` sources. The machine's own apt
# configuration and state are never touched.
setup_apt() {
        local sources=$APT_DIR/sources.list.d/orrery-debian-src.sources

        mkdir -p "$APT_DIR"/{sources.list.d,lists/partial,cache/archives/partial}

        # deb822 files: keep the stanzas of Debian's archive, as deb-src.
        {
                echo "# Generated by guest/build-guest.sh from the machine's Debian sources."
                local f
                for f in /etc/apt/sources.list.d/*.sources; do
                        [[ -r $f ]] || continue
                        awk '
                                function flush() {
                                        if (stanza != "" && keep && deb)
                                                printf "%s\n", stanza
                                        stanza = ""; keep = 0; deb = 0
                                }
                                /^[ \t]*$/ { flush(); next }
                                /^#/ { next }
                                /^Types:/ {
                                        if ($0 ~ /[ \t]deb([ \t]|$)/)
                                                deb = 1
                                        stanza = stanza "Types: deb-src\n"
                                        next
                                }
                                /^URIs:/ && /debian/ { keep = 1 }
                                /^Enabled:/ && /no/ { deb = 0 }
                                { stanza = stanza $0 "\n" }
                                END { flush() }
                        ' "$f"
                done
        } >"$sources.tmp"
        mv "$sources.tmp" "$sources"

        # One-line files: deb [options] URI SUITE COMPONENTS...
        {
                echo "# Generated by guest/build-guest.sh from the machine's Debian sources."
                local f
                for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
                        [[ -r $f ]] || continue
                        awk '$1 == "deb" && /debian/ { sub(/^deb/, "deb-src"); print }' "$f"
                done
        } >"$APT_DIR/sources.list.tmp"
        mv "$APT_DIR/sources.list.tmp" "$APT_DIR/sources.list"

        grep -q '^Types: deb-src' "$sources" || grep -q '^deb-src' "$APT_DIR/sources.list" ||
                die "found no Debian archive in /etc/apt/sources.list{,.d} to take deb-src entries from"

        cat >"$APT_CONFIG" <<EOF
// Generated by guest/build-guest.sh: a private apt setup used only to
// fetch Debian source packages. The machine's own apt state is not used.
Dir::Etc::SourceList "$APT_DIR/sources.list";
Dir::Etc::SourceParts "$APT_DIR/sources.list.d";
Dir::State::Lists "$APT_DIR/lists";
Dir::Cache "$APT_DIR/cache";
Dir::Cache::Archives "$APT_DIR/cache/archives";
APT::Sandbox::User "root";
Acquire::Languages "none";
EOF
}

apt_update() {
        log "updating the private apt source lists (apt-get update)..."
        run_step "$CACHE_ROOT/logs/apt-update.log" "apt-get update" \
                apt-get -q update
}

# source_version PKG: prints the version of the source package PKG apt
# would fetch, taken from the .dsc file name (without epoch).
source_version() {
        apt-get -q source --print-uris "$1" 2>/dev/null |
                awk -v pkg="$1" '
                        index($2, pkg "_") == 1 && $2 ~ /\.dsc$/ {
                                v = substr($2, length(pkg) + 2); sub(/\.dsc$/, "", v); print v
                        }'
}

setup_apt
: >"$CACHE_ROOT/logs/apt-update.log"
if [[ ${ORRERY_GUEST_APT_REFRESH:-0} == 1 ]] ||
   ! compgen -G "$APT_DIR/lists/*Sources*" >/dev/null; then
        apt_update
fi
BUSYBOX_VERSION=$(source_version busybox)
JSONC_VERSION=$(source_version json-c)
if [[ -z $BUSYBOX_VERSION || -z $JSONC_VERSION ]]; then
        apt_update
        BUSYBOX_VERSION=$(source_version busybox)
        JSONC_VERSION=$(source_version json-c)
fi
[[ -n $BUSYBOX_VERSION ]] || die "apt cannot find the busybox source package (log: $CACHE_ROOT/logs/apt-update.log)"
[[ -n $JSONC_VERSION ]] || die "apt cannot find the json-c source package (log: $CACHE_ROOT/logs/apt-update.log)"
readonly BUSYBOX_VERSION JSONC_VERSION

# -------------------------------------------------------------- the keys

LINUX_VERSION=$(pkg_version "$LINUX_PKG")
KERNEL_KEY=$(key_of "$RECIPE" "$TOOLCHAIN" "$LINUX_PKG=$LINUX_VERSION" \
                    "kernel.config $(sha "$GUEST_DIR/kernel.config")")
BUSYBOX_KEY=$(key_of "$RECIPE" "$TOOLCHAIN" "busybox-source=$BUSYBOX_VERSION" \
                     "busybox.config $(sha "$GUEST_DIR/busybox.config")")

JSONC_KEY=$(key_of "$RECIPE" "$TOOLCHAIN" "json-c-source=$JSONC_VERSION")
helpers_inputs=("$RECIPE" "$TOOLCHAIN" "json-c $JSONC_KEY" "macro.h $(sha "$TOP_DIR/lib/macro.h")")
for f in "$TOP_DIR"/lib/base64.[ch]; do
        helpers_inputs+=("lib/${f##*/} $(sha "$f")")
done
for f in "$GUEST_DIR"/orrery-guest.[ch] "$GUEST_DIR"/probe/*.[ch] "$GUEST_DIR"/agent/*.[ch]; do
        helpers_inputs+=("${f#"$GUEST_DIR"/} $(sha "$f")")
done
HELPERS_KEY=$(key_of "${helpers_inputs[@]}")

rootfs_inputs=()
while IFS= read -r f; do
        mode=644
        [[ -x $GUEST_DIR/rootfs/$f ]] && mode=755
        rootfs_inputs+=("rootfs/$f $mode $(sha "$GUEST_DIR/rootfs/$f")")
done < <(cd "$GUEST_DIR/rootfs" && find . -type f -printf '%P\n' | LC_ALL=C sort)

E2FSPROGS="e2fsprogs=$(pkg_version e2fsprogs)"
GUEST_KEY=$(key_of "$RECIPE" "kernel $KERNEL_KEY" "busybox $BUSYBOX_KEY" \
                   "helpers $HELPERS_KEY" "$E2FSPROGS" "${rootfs_inputs[@]}")
readonly LINUX_VERSION KERNEL_KEY BUSYBOX_KEY JSONC_KEY HELPERS_KEY E2FSPROGS GUEST_KEY

KERNEL_PART=$CACHE_ROOT/parts/kernel-$KERNEL_KEY
BUSYBOX_PART=$CACHE_ROOT/parts/busybox-$BUSYBOX_KEY
JSONC_PART=$CACHE_ROOT/parts/json-c-$JSONC_KEY
HELPERS_PART=$CACHE_ROOT/parts/helpers-$HELPERS_KEY
GUEST_CACHE=$CACHE_ROOT/$GUEST_KEY
readonly KERNEL_PART BUSYBOX_PART JSONC_PART HELPERS_PART GUEST_CACHE

# ---------------------------------------------------------------- kernel

build_kernel() {
        local work=$CACHE_ROOT/work/kernel-$KERNEL_KEY.tmp
        local logfile=$CACHE_ROOT/logs/kernel-$KERNEL_KEY.log
        local src=$work/$LINUX_PKG obj=$work/obj
        local kmake=(make -C "$src" O="$obj" ARCH=riscv CROSS_COMPILE="$CROSS")

        rm -rf "$work"
        mkdir -p "$obj"
        : >"$logfile"

        log "extracting $LINUX_PKG $LINUX_VERSION..."
        run_step "$logfile" "extracting $LINUX_TARBALL" tar -C "$work" -xJf "$LINUX_TARBALL"
        [[ -d $src ]] || die "$LINUX_TARBALL did not contain $LINUX_PKG/"

        log "configuring the kernel (tinyconfig + guest/kernel.config)..."
        run_step "$logfile" "make tinyconfig" "${kmake[@]}" tinyconfig
        run_step "$logfile" "merge_config.sh" \
                env -C "$src" ARCH=riscv CROSS_COMPILE="$CROSS" \
                scripts/kconfig/merge_config.sh -n -O "$obj" "$obj/.config" "$GUEST_DIR/kernel.config"
        run_step "$logfile" "make olddefconfig" "${kmake[@]}" olddefconfig
        check_fragment "$GUEST_DIR/kernel.config" "$obj/.config"

        log "building the kernel with -j$JOBS (2 to 4 minutes on 2 cores)..."
        run_step "$logfile" "building the kernel" "${kmake[@]}" -j"$JOBS" Image

        if [[ ! -x $obj/usr/gen_init_cpio ]]; then
                cc -O2 -o "$obj/usr/gen_init_cpio" "$src/usr/gen_init_cpio.c"
        fi

        mkdir -p "$KERNEL_PART.tmp"
        cp "$obj/arch/riscv/boot/Image" "$obj/vmlinux" "$obj/System.map" "$obj/usr/gen_init_cpio" "$KERNEL_PART.tmp/"
        cp "$obj/.config" "$KERNEL_PART.tmp/config"
        publish "$KERNEL_PART.tmp" "$KERNEL_PART"

        if [[ ${ORRERY_GUEST_KEEP_WORK:-0} == 1 ]]; then
                publish "$work" "${work%.tmp}"
        else
                rm -rf "$work"
        fi
        log "kernel built: $KERNEL_PART/Image"
}

# --------------------------------------------------------------- busybox

# fetch_source PKG VERSION: sets SOURCE_TREE to Debian's source tree of
# PKG (patches applied), fetched once into the cache.
fetch_source() {
        local pkg=$1 version=$2
        local dir=$CACHE_ROOT/src/${pkg}_$version
        local logfile=$CACHE_ROOT/logs/$pkg-source.log

        SOURCE_TREE=$dir/tree
        [[ -d $SOURCE_TREE ]] && return

        : >"$logfile"
        rm -rf "$dir.tmp"
        mkdir -p "$dir.tmp"
        log "fetching Debian's $pkg $version source (apt-get source)..."
        if ! (cd "$dir.tmp" && apt-get -q source --download-only "$pkg") >>"$logfile" 2>&1; then
                # The lists may be older than the archive: refresh them once.
                apt_update
                [[ $(source_version "$pkg") == "$version" ]] ||
                        die "$pkg source moved to $(source_version "$pkg") while building: run again"
                (cd "$dir.tmp" && apt-get -q source --download-only "$pkg") >>"$logfile" 2>&1 ||
                        die "apt-get source $pkg failed (log: $logfile)"
        fi
        [[ -f $dir.tmp/${pkg}_$version.dsc ]] ||
                die "apt-get source did not fetch ${pkg}_$version.dsc (log: $logfile)"
        dpkg-source -x "$dir.tmp/${pkg}_$version.dsc" "$dir.tmp/tree" >>"$logfile" 2>&1 ||
                die "dpkg-source -x failed (log: $logfile)"
        publish "$dir.tmp" "$dir"
}

build_busybox() {
        local work=$CACHE_ROOT/work/busybox-$BUSYBOX_KEY.tmp
        local logfile=$CACHE_ROOT/logs/busybox-$BUSYBOX_KEY.log
        local tree=$work/tree
        local bmake=(make -C "$tree" CROSS_COMPILE="$CROSS")

        fetch_source busybox "$BUSYBOX_VERSION"

        rm -rf "$work"
        mkdir -p "$work"
        : >"$logfile"
        cp -a "$SOURCE_TREE" "$tree"

        log "configuring busybox (defconfig + guest/busybox.config)..."
        run_step "$logfile" "busybox defconfig" "${bmake[@]}" defconfig
        apply_fragment "$GUEST_DIR/busybox.config" "$tree/.config"
        run_step "$logfile" "busybox oldconfig" \
                bash -c '{ yes "" || true; } | "$@"' oldconfig "${bmake[@]}" oldconfig
        check_fragment "$GUEST_DIR/busybox.config" "$tree/.config"

        log "building busybox with -j$JOBS (about 1 minute)..."
        run_step "$logfile" "building busybox" "${bmake[@]}" -j"$JOBS" busybox busybox.links

        mkdir -p "$BUSYBOX_PART.tmp"
        cp "$tree/busybox" "$tree/busybox.links" "$BUSYBOX_PART.tmp/"
        cp "$tree/.config" "$BUSYBOX_PART.tmp/config"
        publish "$BUSYBOX_PART.tmp" "$BUSYBOX_PART"

        if [[ ${ORRERY_GUEST_KEEP_WORK:-0} == 1 ]]; then
                publish "$work" "${work%.tmp}"
        else
                rm -rf "$work"
        fi
        log "busybox built: $BUSYBOX_PART/busybox"
}

# ---------------------------------------------------------------- json-c

# A static riscv64 libjson-c.a and its headers, from Debian's source
# package, for the guest agent.
build_jsonc() {
        local work=$CACHE_ROOT/work/json-c-$JSONC_KEY.tmp
        local logfile=$CACHE_ROOT/logs/json-c-$JSONC_KEY.log

        fetch_source json-c "$JSONC_VERSION"

        rm -rf "$work"
        mkdir -p "$work"
        : >"$logfile"

        log "building json-c $JSONC_VERSION (static, riscv64)..."
        run_step "$logfile" "configuring json-c (cmake)" \
                cmake -S "$SOURCE_TREE" -B "$work/build" \
                -DCMAKE_SYSTEM_NAME=Linux -DCMAKE_SYSTEM_PROCESSOR=riscv64 \
                -DCMAKE_C_COMPILER="${CROSS}gcc" -DCMAKE_BUILD_TYPE=Release \
                -DCMAKE_INSTALL_PREFIX=/usr -DCMAKE_INSTALL_LIBDIR=lib -DCMAKE_INSTALL_INCLUDEDIR=include \
                -DBUILD_SHARED_LIBS=OFF -DBUILD_STATIC_LIBS=ON -DBUILD_TESTING=OFF -DBUILD_APPS=OFF \
                -DDISABLE_WERROR=ON -DDISABLE_EXTRA_LIBS=ON
        run_step "$logfile" "building json-c" make -C "$work/build" -j"$JOBS"
        run_step "$logfile" "installing json-c" make -C "$work/build" install DESTDIR="$JSONC_PART.tmp"
        [[ -f $JSONC_PART.tmp/usr/lib/libjson-c.a && -f $JSONC_PART.tmp/usr/include/json-c/json.h ]] ||
                die "json-c did not install usr/lib/libjson-c.a and usr/include/json-c/json.h (log: $logfile)"
        publish "$JSONC_PART.tmp" "$JSONC_PART"
        rm -rf "$work"
}

# --------------------------------------------------------------- helpers

# orrery-guest: orrery-guest-probe and orrery-guest-agent in one static
# binary (see guest/orrery-guest.c), linked with json-c.
build_helpers() {
        local logfile=$CACHE_ROOT/logs/helpers-$HELPERS_KEY.log

        log "building orrery-guest (orrery-guest-probe, orrery-guest-agent)..."
        rm -rf "$HELPERS_PART.tmp"
        mkdir -p "$HELPERS_PART.tmp"
        : >"$logfile"
        run_step "$logfile" "building orrery-guest" \
                "${CROSS}gcc" -static -O2 -std=gnu11 -Wall -Wextra -Wno-unused-parameter \
                -Wshadow -Wmissing-prototypes -Wstrict-prototypes -Wvla \
                -D_GNU_SOURCE -I"$TOP_DIR/lib" -I"$GUEST_DIR" -I"$GUEST_DIR/probe" -I"$GUEST_DIR/agent" \
                -I"$JSONC_PART/usr/include" -s -o "$HELPERS_PART.tmp/orrery-guest" \
                "$GUEST_DIR/orrery-guest.c" "$GUEST_DIR/probe/orrery-guest-probe.c" "$GUEST_DIR"/agent/*.c \
                "$TOP_DIR/lib/base64.c" -L"$JSONC_PART/usr/lib" -ljson-c -lm
        if grep -q 'warning:' "$logfile"; then
                cat "$logfile"
        fi
        publish "$HELPERS_PART.tmp" "$HELPERS_PART"
}

# ------------------------------------------------------------- initramfs

# Writes the gen_init_cpio file list of the guest's root file system. Files
# are staged under STAGE with a fixed mtime so that the archive only
# changes when its contents do. Device nodes are `nod` entries: nothing is
# created on the host.
write_initramfs_list() {
        local stage=$1 d f link mode

        mkdir -p "$stage"
        echo "# Orrery default guest root file system (guest/build-guest.sh)"
        for d in /bin /sbin /usr /usr/bin /usr/sbin /dev /etc /etc/init.d \
                 /proc /sys /run /mnt /var; do
                echo "dir $d 0755 0 0"
        done
        echo "dir /root 0700 0 0"
        echo "dir /tmp 1777 0 0"
        echo "nod /dev/console 0600 0 0 c 5 1"
        echo "nod /dev/null 0666 0 0 c 1 3"
        echo "nod /dev/tty 0666 0 5 c 5 0"

        install -m 0755 "$BUSYBOX_PART/busybox" "$stage/busybox"
        echo "file /bin/busybox $stage/busybox 0755 0 0"
        while IFS= read -r link; do
                [[ $link == /* && $link != /bin/busybox ]] || continue
                echo "slink $link /bin/busybox 0777 0 0"
        done <"$BUSYBOX_PART/busybox.links"
        echo "slink /init /sbin/init 0777 0 0"

        install -m 0755 "$HELPERS_PART/orrery-guest" "$stage/orrery-guest"
        echo "file /usr/bin/orrery-guest $stage/orrery-guest 0755 0 0"
        echo "slink /usr/bin/orrery-guest-probe orrery-guest 0777 0 0"
        echo "slink /usr/sbin/orrery-guest-agent ../bin/orrery-guest 0777 0 0"

        # A 1 MiB ext2 image that rcS loop-mounts at /mnt/ram: a file system
        # the guest agent's guest-fsfreeze-* can freeze (the initramfs cannot
        # be frozen). Made here because mke2fs in the guest would wait
        # seconds at boot for the kernel's random pool (for the UUID); the
        # UUID, hash seed and times are fixed so the image is reproducible.
        E2FSPROGS_FAKE_TIME=$EPOCH mke2fs -q -F -t ext2 -b 1024 -N 32 -m 0 -L orrery-ram \
                -U 4f727265-7279-4d72-8a6d-2d6578743201 \
                -E hash_seed=4f727265-7279-4d72-8a6d-2d6578743202,root_owner=0:0 \
                "$stage/ram.ext2" 1024 >/dev/null 2>&1 || die "mke2fs of $stage/ram.ext2 failed"
        echo "dir /usr/share 0755 0 0"
        echo "dir /usr/share/orrery 0755 0 0"
        echo "file /usr/share/orrery/ram.ext2 $stage/ram.ext2 0644 0 0"

        while IFS= read -r d; do
                echo "dir /$d 0755 0 0"
        done < <(cd "$GUEST_DIR/rootfs" && find . -mindepth 1 -type d -printf '%P\n' | LC_ALL=C sort)
        while IFS= read -r f; do
                mode=0644
                [[ -x $GUEST_DIR/rootfs/$f ]] && mode=0755
                mkdir -p "$(dirname "$stage/rootfs/$f")"
                install -m "$mode" "$GUEST_DIR/rootfs/$f" "$stage/rootfs/$f"
                echo "file /$f $stage/rootfs/$f $mode 0 0"
        done < <(cd "$GUEST_DIR/rootfs" && find . -type f -printf '%P\n' | LC_ALL=C sort)

        find "$stage" -exec touch -h -d "@$EPOCH" {} +
}

assemble_guest() {
        local tmp=$GUEST_CACHE.tmp

        rm -rf "$tmp"
        mkdir -p "$tmp"
        log "assembling initramfs.cpio.gz..."
        write_initramfs_list "$tmp/stage" >"$tmp/initramfs.list"
        # Duplicate directories (from rootfs/) are harmless for the kernel
        # but noisy: keep the first of each.
        awk '!($1 == "dir" && seen[$2]++)' "$tmp/initramfs.list" >"$tmp/initramfs.list.new"
        mv "$tmp/initramfs.list.new" "$tmp/initramfs.list"
        "$KERNEL_PART/gen_init_cpio" -t "$EPOCH" "$tmp/initramfs.list" >"$tmp/initramfs.cpio"
        gzip -9 -n "$tmp/initramfs.cpio"
        rm -rf "$tmp/stage"
        sed -i "s|$tmp/stage/|stage/|" "$tmp/initramfs.list"

        cp "$KERNEL_PART/Image" "$tmp/Image"
        cp "$KERNEL_PART/config" "$tmp/kernel.config"
        cp "$KERNEL_PART/System.map" "$tmp/System.map"
        cp "$KERNEL_PART/vmlinux" "$tmp/vmlinux"
        cp "$BUSYBOX_PART/config" "$tmp/busybox.config"
        {
                echo "guest $GUEST_KEY"
                echo "$RECIPE"
                echo "$TOOLCHAIN"
                echo "$LINUX_PKG=$LINUX_VERSION kernel $KERNEL_KEY"
                echo "busybox-source=$BUSYBOX_VERSION busybox $BUSYBOX_KEY"
                echo "json-c-source=$JSONC_VERSION json-c $JSONC_KEY"
                echo "helpers $HELPERS_KEY"
                echo "$E2FSPROGS"
                printf '%s\n' "${rootfs_inputs[@]}"
        } >"$tmp/inputs.txt"
        publish "$tmp" "$GUEST_CACHE"
}

# ------------------------------------------------------------------ main

if [[ -f $OUTDIR/guest-key && $(<"$OUTDIR/guest-key") == "$GUEST_KEY" &&
      -f $OUTDIR/Image && -f $OUTDIR/vmlinux && -f $OUTDIR/initramfs.cpio.gz ]]; then
        log "up to date ($GUEST_KEY)"
        touch "$OUTDIR/Image" "$OUTDIR/vmlinux" "$OUTDIR/initramfs.cpio.gz"
        exit 0
fi

if [[ -f $GUEST_CACHE/Image && -f $GUEST_CACHE/vmlinux && -f $GUEST_CACHE/initramfs.cpio.gz ]]; then
        log "using cached guest $GUEST_CACHE"
else
        log "building the guest $GUEST_KEY (cache: $CACHE_ROOT)"
        if [[ -f $KERNEL_PART/Image && -f $KERNEL_PART/vmlinux ]]; then
                log "using cached kernel $KERNEL_PART"
        else
                build_kernel
        fi
        if [[ -f $BUSYBOX_PART/busybox ]]; then
                log "using cached busybox $BUSYBOX_PART"
        else
                build_busybox
        fi
        if [[ -f $JSONC_PART/usr/lib/libjson-c.a ]]; then
                log "using cached json-c $JSONC_PART"
        else
                build_jsonc
        fi
        if [[ -f $HELPERS_PART/orrery-guest ]]; then
                log "using cached orrery-guest $HELPERS_PART"
        else
                build_helpers
        fi
        assemble_guest
fi

rm -f "$OUTDIR/guest-key"
for f in Image vmlinux initramfs.cpio.gz inputs.txt kernel.config busybox.config System.map; do
        cp "$GUEST_CACHE/$f" "$OUTDIR/.$f.tmp"
        mv "$OUTDIR/.$f.tmp" "$OUTDIR/$f"
done
echo "$GUEST_KEY" >"$OUTDIR/guest-key"

log "done in $(( $(date +%s) - START ))s: $OUTDIR/Image ($(du -k "$OUTDIR/Image" | cut -f1) KiB)," \
    "$OUTDIR/initramfs.cpio.gz ($(du -k "$OUTDIR/initramfs.cpio.gz" | cut -f1) KiB)"
