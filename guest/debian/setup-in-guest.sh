#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Runs inside the Debian image, in a chroot under the build initramfs,
# right after debootstrap's second stage (see build-debian.sh): turns the
# bare system into the Orrery guest the README describes.

set -euo pipefail
export LC_ALL=C DEBIAN_FRONTEND=noninteractive

echo orrery >/etc/hostname
cat >/etc/hosts <<'HOSTS'
127.0.0.1       localhost
127.0.1.1       orrery
::1             localhost ip6-localhost ip6-loopback
HOSTS

# One ext4 file system, no partition table, found by its label: with a
# second drive it is not always the first virtio disk.
echo 'LABEL=debian-root / ext4 defaults,errors=remount-ro 0 1' >/etc/fstab

# DHCP on the virtio NIC (slirp answers it) by systemd-networkd.
mkdir -p /etc/systemd/network
cat >/etc/systemd/network/20-orrery-wired.network <<'NET'
[Match]
Type=ether

[Network]
DHCP=yes
NET
systemctl enable systemd-networkd.service

# root logs in without a password on the consoles (serial ttyS0, the
# framebuffer's tty1); sshd keeps refusing empty passwords, so over ssh
# only a key in /root/.ssh/authorized_keys lets root in.
passwd -d root

# Each VM makes its own ssh host keys on its first boot: the ones
# openssh-server's postinst made here would otherwise be shared by every VM
# copied from this image.
rm -f /etc/ssh/ssh_host_*
cat >/etc/systemd/system/orrery-ssh-host-keys.service <<'UNIT'
[Unit]
Description=Make this machine's own SSH host keys
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key
Before=ssh.service ssh.socket

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A
RemainAfterExit=yes

[Install]
WantedBy=ssh.service ssh.socket multi-user.target
UNIT
systemctl enable orrery-ssh-host-keys.service

# The kernel's postinst built the initramfs during the second stage, with
# the modules build-debian.sh listed in /usr/share/initramfs-tools/modules.d.
ls /boot/initrd.img-* >/dev/null 2>&1 || update-initramfs -c -k all

# Each VM made from this image gets its own machine id on first boot.
: >/etc/machine-id
rm -f /var/lib/dbus/machine-id

rm -f /etc/dpkg/dpkg.cfg.d/orrery-build-unsafe-io
apt-get clean
rm -rf /var/lib/apt/lists/* /debootstrap
