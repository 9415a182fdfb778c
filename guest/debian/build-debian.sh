#!/bin/bash
# SPDX-License-Identifier: MIT
#
# build-debian.sh OUTDIR
#
# Builds a Debian 13 (trixie) riscv64 disk image from Debian's archive and
# puts the results in OUTDIR:
#
#   OUTDIR/debian.img   sparse raw image, one ext4 file system (no partition
#                       table), the root of the installed system
#   OUTDIR/vmlinux      Debian's linux-image-riscv64 kernel (an Image)
#   OUTDIR/initrd.img   the initramfs initramfs-tools built inside the guest
#   OUTDIR/repo.img     a small ext4 image holding a host-local apt
#                       repository (REPO_PACKAGES), for a read-only drive
#
# How, since this machine cannot run riscv64 programs itself:
#   1. host: `debootstrap --foreign` downloads and unpacks the packages
#      (cached .debs in the cache's debs/ directory);
#   2. host: the tree goes into a sparse ext4 image with `mkfs.ext4 -d`;
#      Debian's kernel is taken from its .deb, and a small initramfs is made
#      from busybox-static, the few modules that reach the disk, and
#      guest/debian/build-init;
#   3. guest: orrery-vm boots that kernel and initramfs on the image, which
#      runs the debootstrap second stage and guest/debian/setup-in-guest.sh
#      (configuration, initramfs-tools), then powers off;
#   4. host: debugfs copies the kernel and the initrd out of the image.
#
# The result is cached by a hash of its inputs (these scripts, the package
# list, the invoking user's ssh public keys, the host tools' versions) under
# ${XDG_CACHE_HOME:-~/.cache}/orrery/debian/. The archive moves on: set
# ORRERY_DEBIAN_REBUILD=1 to build again with today's packages.
#
# Environment:
#   ORRERY_DEBIAN_CACHE_DIR   cache directory (default: see above)
#   ORRERY_DEBIAN_MIRROR      Debian mirror (default: the first Debian URI
#                             of the machine's apt sources)
#   ORRERY_DEBIAN_REBUILD     1: ignore a cached image
#   ORRERY_VM                 orrery-vm to run the second stage with
#                             (default: the one next to OUTDIR in a build tree)
#
# Needs root (debootstrap creates device nodes and root-owned files).

set -euo pipefail

readonly DEBIAN_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly SUITE=trixie
readonly IMAGE_SIZE=4G
# What the image holds beyond --variant=minbase; Recommends are not installed.
readonly PACKAGES=systemd-sysv,udev,dbus,openssh-server,qemu-guest-agent,iproute2,linux-image-riscv64,initramfs-tools,kmod,xz-utils,busybox-static
# Modules the build initramfs loads to reach the ext4 root on virtio-blk.
readonly BUILD_MODULES=(virtio_mmio virtio_blk crc32c_generic ext4)
# Served to the VM by the host-local repository drive (repo.img).
readonly REPO_PACKAGES=(hello)
# The guest gets this long to finish the second stage and configuration.
readonly GUEST_TIMEOUT=${ORRERY_DEBIAN_GUEST_TIMEOUT:-3600}

log() {
        printf 'debian: %s\n' "$*"
}

die() {
        printf 'debian: error: %s\n' "$*" >&2
        exit 1
}

[[ $# -eq 1 && $1 != -* ]] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
[[ $EUID -eq 0 ]] || die "debootstrap needs root: run the build as root"
START=$(date +%s)
readonly START

mkdir -p "$1"
OUTDIR=$(cd "$1" && pwd)
CACHE_ROOT=${ORRERY_DEBIAN_CACHE_DIR:-${XDG_CACHE_HOME:-${HOME:?HOME is not set}/.cache}/orrery/debian}
readonly OUTDIR CACHE_ROOT

missing=()
for tool in debootstrap mkfs.ext4 debugfs dpkg-deb cpio xz gzip sha256sum flock truncate wget; do
        command -v "$tool" >/dev/null || missing+=("$tool")
done
[[ ${#missing[@]} -eq 0 ]] || die "missing: ${missing[*]} (install the packages in guest/build-deps.txt)"

VM=${ORRERY_VM:-$OUTDIR/../../emulator/orrery-vm}
[[ -x $VM ]] || die "no orrery-vm at $VM: build the tree first or set ORRERY_VM"
readonly VM

TICKER_PID=
cleanup() {
        [[ -z $TICKER_PID ]] || kill "$TICKER_PID" 2>/dev/null || true
}
trap cleanup EXIT

# phase NAME START: one line with how long a phase took.
phase() {
        log "$1 took $(( $(date +%s) - $2 ))s"
}

# run_step LOG DESCRIPTION COMMAND...: runs COMMAND with its output in LOG,
# printing every 30 s the time so far and the log's last line.
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
                        log "  ... $desc: $(( $(date +%s) - start ))s: $(tail -n 1 "$logfile" | tr -cd '[:print:]' | cut -c1-100)"
                done
        ) &
        TICKER_PID=$!

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

sha() {
        sha256sum "$1" | cut -c1-64
}

# The machine's Debian mirror, from its apt sources (deb822 or one-line).
default_mirror() {
        local uri
        uri=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
                awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i ~ /debian\/?$/) { print $i; exit } }')
        [[ -n $uri ]] || uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
                awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /debian\/?$/) { print $i; exit } }')
        echo "${uri:-http://deb.debian.org/debian}"
}
MIRROR=${ORRERY_DEBIAN_MIRROR:-$(default_mirror)}
readonly MIRROR

# ------------------------------------------------------------- the key

KEYS_FILE=$(mktemp)
for f in "${HOME:-/nonexistent}"/.ssh/id_*.pub; do
        [[ -r $f ]] && cat "$f" >>"$KEYS_FILE"
done
inputs=(
        "suite $SUITE" "packages $PACKAGES" "repository ${REPO_PACKAGES[*]}" "size $IMAGE_SIZE"
        "build-debian.sh $(sha "$DEBIAN_DIR/build-debian.sh")"
        "build-init $(sha "$DEBIAN_DIR/build-init")"
        "setup-in-guest.sh $(sha "$DEBIAN_DIR/setup-in-guest.sh")"
        "keys $(sha "$KEYS_FILE")"
        "debootstrap $(dpkg-query -W -f='${Version}' debootstrap 2>/dev/null)"
        "e2fsprogs $(dpkg-query -W -f='${Version}' e2fsprogs 2>/dev/null)"
)
KEY=$(printf '%s\n' "${inputs[@]}" | sha256sum | cut -c1-20)
RESULT=$CACHE_ROOT/image-$KEY
readonly KEY RESULT

mkdir -p "$CACHE_ROOT"/{debs,logs}
exec 9>"$CACHE_ROOT/lock"
if ! flock -n 9; then
        log "waiting for another Debian image build to finish (lock: $CACHE_ROOT/lock)"
        flock 9
fi

publish_outputs() {
        # Hard links: the image is 4 GiB (sparse); users copy it before writing.
        local f
        for f in debian.img vmlinux initrd.img repo.img; do
                rm -f "$OUTDIR/$f"
                ln "$RESULT/$f" "$OUTDIR/$f" 2>/dev/null || cp --sparse=always "$RESULT/$f" "$OUTDIR/$f"
        done
        log "ready in $OUTDIR ($(( $(date +%s) - START ))s)"
}

if [[ ${ORRERY_DEBIAN_REBUILD:-0} != 1 && -f $RESULT/debian.img && -f $RESULT/vmlinux && -f $RESULT/initrd.img && -f $RESULT/repo.img ]]; then
        log "using the cached image $RESULT"
        publish_outputs
        exit 0
fi

WORK=$CACHE_ROOT/work-$KEY.tmp
rm -rf "$CACHE_ROOT"/work-*.tmp "$CACHE_ROOT"/image-*.tmp
mkdir -p "$WORK"
LOGS=$CACHE_ROOT/logs
TREE=$WORK/root

# ----------------------------------------------- 1. first stage (host)

t=$(date +%s)
log "downloading and unpacking Debian $SUITE riscv64 from $MIRROR (debootstrap --foreign)..."
: >"$LOGS/debootstrap.log"
run_step "$LOGS/debootstrap.log" "debootstrap --foreign" \
        debootstrap --foreign --arch=riscv64 --variant=minbase \
                --cache-dir="$CACHE_ROOT/debs" --include="$PACKAGES" \
                "$SUITE" "$TREE" "$MIRROR"
phase "download and first stage" "$t"

# ---------------------------------------- 2. the image and the build boot

t=$(date +%s)
KDEB=$(ls "$TREE"/var/cache/apt/archives/linux-image-[0-9]*_riscv64.deb | head -n 1)
BBDEB=$(ls "$TREE"/var/cache/apt/archives/busybox-static_*_riscv64.deb | head -n 1)
[[ -f $KDEB && -f $BBDEB ]] || die "debootstrap did not fetch the kernel and busybox-static"
mkdir -p "$WORK/kernel" "$WORK/busybox" "$WORK/initramfs"/{bin,dev,proc,sys,mnt,modules}
dpkg-deb -x "$KDEB" "$WORK/kernel"
dpkg-deb -x "$BBDEB" "$WORK/busybox"
MODDIR=$(echo "$WORK"/kernel/usr/lib/modules/*)
[[ -d $MODDIR ]] || die "no modules in $KDEB"

# Each module after the ones it depends on (the "depends=" of its .modinfo:
# the package has no modules.dep yet, depmod runs in its postinst).
declare -A loaded=()
ORDER=()
add_module() {
        local name=$1 file dep deps
        [[ -z ${loaded[$name]:-} ]] || return 0
        loaded[$name]=1
        file=$(find "$MODDIR" -name "$name.ko*" | head -n 1)
        [[ -n $file ]] || die "module $name is not in $KDEB"
        deps=$(xz -dcf "$file" | tr '\0' '\n' | sed -n 's/^depends=//p' | head -n 1)
        for dep in ${deps//,/ }; do
                add_module "$dep"
        done
        xz -dcf "$file" >"$WORK/initramfs/modules/$name.ko"
        ORDER+=("$name")
}
for m in "${BUILD_MODULES[@]}"; do
        add_module "$m"
done
printf '%s\n' "${ORDER[@]}" >"$WORK/initramfs/modules/order"
cp "$WORK/busybox/usr/bin/busybox" "$WORK/initramfs/bin/busybox"
cp "$DEBIAN_DIR/build-init" "$WORK/initramfs/init"
chmod 755 "$WORK/initramfs/init"
(cd "$WORK/initramfs" && find . | cpio -o -H newc --quiet | gzip -1) >"$WORK/build-initramfs.cpio.gz"

# What the second stage runs after debootstrap, and the settings it needs.
install -m 755 "$DEBIAN_DIR/setup-in-guest.sh" "$TREE/orrery-setup"
if [[ -s $KEYS_FILE ]]; then
        install -d -m 700 "$TREE/root/.ssh"
        install -m 600 "$KEYS_FILE" "$TREE/root/.ssh/authorized_keys"
fi
rm -f "$KEYS_FILE"
# Debian's kernel has virtio and ext4 as modules: its initramfs (built by
# the kernel's postinst in the second stage) must carry them.
mkdir -p "$TREE/usr/share/initramfs-tools/modules.d" "$TREE/etc/initramfs-tools/conf.d"
printf '%s\n' virtio_mmio virtio_blk virtio_net virtio_console virtio_input crc32c_generic ext4 \
        >"$TREE/usr/share/initramfs-tools/modules.d/orrery"
echo COMPRESS=zstd >"$TREE/etc/initramfs-tools/conf.d/orrery-compress"
# Only the modules listed there (and what they need): with the default
# MODULES=most the initrd held hundreds of drivers, slow to build emulated.
echo MODULES=list >"$TREE/etc/initramfs-tools/conf.d/orrery-modules"
# Nothing survives a crash of the build VM anyway: let dpkg skip its fsyncs.
mkdir -p "$TREE/etc/dpkg/dpkg.cfg.d"
echo force-unsafe-io >"$TREE/etc/dpkg/dpkg.cfg.d/orrery-build-unsafe-io"
# No manuals, documentation or translations: a third of what dpkg would
# unpack inside the emulator, and a VM is used over ssh and the agent.
# Licences stay.
cat >"$TREE/etc/dpkg/dpkg.cfg.d/orrery-nodoc" <<'NODOC'
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
path-exclude=/usr/share/lintian/*
NODOC

# The host-local repository: packages the image does not hold, downloaded
# here (checked against the index debootstrap verified) and served to a VM
# as a read-only drive with a `file:` apt source (README.md). A VM with a
# restricted NIC installs from it without reaching beyond the host.
INDEX=$(ls "$TREE"/var/lib/apt/lists/*_dists_${SUITE}_main_binary-riscv64_Packages | head -n 1)
[[ -f $INDEX ]] || die "debootstrap left no package index"
mkdir -p "$WORK/repo"
for pkg in "${REPO_PACKAGES[@]}"; do
        stanza=$(awk -v RS= -v p="$pkg" '$0 ~ "^Package: " p "\n" { print; exit }' "$INDEX")
        file=$(sed -n 's/^Filename: //p' <<<"$stanza")
        want=$(sed -n 's/^SHA256: //p' <<<"$stanza")
        [[ -n $file && -n $want ]] || die "$pkg is not in the $SUITE riscv64 index"
        deb=$CACHE_ROOT/debs/$(basename "$file")
        if [[ ! -f $deb || $(sha "$deb") != "$want" ]]; then
                wget -q -O "$deb.part" "$MIRROR/$file" || die "cannot download $MIRROR/$file"
                mv "$deb.part" "$deb"
        fi
        [[ $(sha "$deb") == "$want" ]] || die "$(basename "$deb"): checksum differs from the index"
        cp "$deb" "$WORK/repo/"
        sed "s|^Filename: .*|Filename: ./$(basename "$file")|" <<<"$stanza" >>"$WORK/repo/Packages"
        echo >>"$WORK/repo/Packages"
done
truncate -s 16M "$WORK/repo.img"
mkfs.ext4 -q -F -L debian-repo -d "$WORK/repo" "$WORK/repo.img"

truncate -s "$IMAGE_SIZE" "$WORK/debian.img"
: >"$LOGS/mkfs.log"
run_step "$LOGS/mkfs.log" "mkfs.ext4 -d" \
        mkfs.ext4 -q -F -L debian-root -d "$TREE" "$WORK/debian.img"
rm -rf "$TREE"
phase "image and build initramfs" "$t"

# ----------------------------------------------- 3. second stage (guest)

t=$(date +%s)
log "running the second stage and the configuration inside orrery-vm..."
: >"$LOGS/second-stage.log"
run_step "$LOGS/second-stage.log" "second stage in orrery-vm" \
        timeout "$GUEST_TIMEOUT" "$VM" --name debian_build --no-bus --no-config \
                --cpu-engine jit --memory 1G --display none --no-reboot \
                --serial "file:$LOGS/second-stage.log" \
                --kernel "$WORK/kernel/boot/$(basename "$(ls "$WORK"/kernel/boot/vmlinux-*)")" \
                --initrd "$WORK/build-initramfs.cpio.gz" \
                --append "console=ttyS0 quiet" \
                --drive "file=$WORK/debian.img"
phase "second stage and configuration in the guest" "$t"

# ------------------------------------------------ 4. the result (host)

t=$(date +%s)
status=$(debugfs -R 'cat /orrery-build-status' "$WORK/debian.img" 2>/dev/null || true)
[[ $status == ok ]] || {
        tail -n 60 "$LOGS/second-stage.log" >&2
        die "the build inside the guest did not finish (status '${status:-none}', log: $LOGS/second-stage.log)"
}
kernel=$(debugfs -R 'ls -p /boot' "$WORK/debian.img" 2>/dev/null | awk -F/ '$6 ~ /^vmlinux-/ { print $6; exit }')
initrd=$(debugfs -R 'ls -p /boot' "$WORK/debian.img" 2>/dev/null | awk -F/ '$6 ~ /^initrd.img-/ { print $6; exit }')
[[ -n $kernel && -n $initrd ]] || die "no kernel or initrd in the image's /boot"
debugfs -R "dump /boot/$kernel $WORK/vmlinux" "$WORK/debian.img" >/dev/null 2>&1
debugfs -R "dump /boot/$initrd $WORK/initrd.img" "$WORK/debian.img" >/dev/null 2>&1
debugfs -w -R 'rm /orrery-build-status' "$WORK/debian.img" >/dev/null 2>&1
[[ -s $WORK/vmlinux && -s $WORK/initrd.img ]] || die "could not copy the kernel and initrd out of the image"

mkdir -p "$RESULT.tmp"
mv "$WORK/debian.img" "$WORK/vmlinux" "$WORK/initrd.img" "$WORK/repo.img" "$RESULT.tmp/"
rm -rf "$WORK" "$RESULT"
mv "$RESULT.tmp" "$RESULT"
phase "copying the kernel and initrd out" "$t"
log "built $RESULT in $(( $(date +%s) - START ))s (kernel $kernel)"
publish_outputs
