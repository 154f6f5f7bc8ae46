"""The lab's OS image and installer, built from Debian packages and cached by recipe hash.

Two cached stages under the cache directory (default ``/var/cache/fleetlab``, outside the checkout):

``rootfs-<hash>/``  ``debootstrap --variant=minbase`` with the packages in ``PACKAGES`` (what the
                    kubeadm roles need preinstalled, so that no machine needs the internet).
                    Rebuilt only when the suite, mirror or package list change.
``os-<hash>/``      the artifacts the boot service serves:
                    ``vmlinuz``          the image's own Debian kernel (also the installer's kernel)
                    ``initrd.gz``        a busybox initramfs (install / root / hello modes, see
                                         ``initramfs/init``), also the installed OS's initrd
                    ``os.map``           runs of non-zero 1 MiB blocks of the disk image
                                         (``<seek MiB> <count MiB>`` per line)
                    ``os.data``          those blocks, concatenated and lzop-compressed
                    ``disk.raw``         the whole (sparse) disk image, for the Vagrant box
                    ``manifest.json``    sizes, kernel version, package list, build times
                    Rebuilt when the rootfs or anything in this file or ``initramfs/`` changes.

The installer writes only the non-zero blocks after discarding the whole disk (virtio-blk with
``discard='unmap'`` reads discarded blocks as zeros), so a 2 GiB disk with ~0.5 GiB of data costs
~0.5 GiB of writes; lzop because busybox unpacks it several times faster than gzip under TCG.
"""
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
INITRAMFS_DIR = os.path.join(HERE, "initramfs")
DEFAULT_CACHE = os.environ.get("FLEETLAB_CACHE", "/var/cache/fleetlab")
SUITE = "bookworm"
MIRROR = os.environ.get("FLEETLAB_DEBIAN_MIRROR", "http://deb.debian.org/debian")
DISK_SIZE_MIB = 2048
BLOCK = 1 << 20

# What every lab machine has preinstalled (no machine needs the internet): systemd + SSH + python3
# for Ansible, containerd + runc, and the tools kubeadm's preflight checks and the roles use.
PACKAGES = [
    "linux-image-amd64", "systemd-sysv", "udev", "dbus", "openssh-server", "sudo",
    "python3", "python3-apt", "iproute2", "iputils-ping", "procps", "kmod", "e2fsprogs",
    "containerd", "runc", "conntrack", "socat", "ebtables", "iptables", "ethtool",
    "ca-certificates",
]

# Initramfs modules (dependencies are added from modules.dep; the init retries until all load,
# since the crypto providers are not in modules.dep).
INITRAMFS_MODULES = ["crc32c_generic", "crct10dif_generic", "crc64_rocksoft_generic", "virtio_pci", "virtio_net", "virtio_blk", "virtio_scsi", "sd_mod", "ext4",
                     "sym53c8xx"]  # the LSI SCSI HBA libvirt picks when no controller model is given

# Kernel module trees a VM never needs (keeps the image small).
PRUNE_MODULES = [
    "sound", "drivers/gpu", "drivers/media", "drivers/net/wireless", "drivers/net/ethernet",
    "drivers/net/usb", "drivers/net/can", "drivers/net/wan", "drivers/net/ieee802154",
    "drivers/infiniband", "drivers/staging", "drivers/bluetooth", "drivers/iio", "drivers/isdn",
    "drivers/mtd", "drivers/usb", "drivers/hid", "drivers/input", "drivers/hwmon",
    "drivers/platform", "drivers/thunderbolt", "drivers/mmc", "drivers/leds", "drivers/edac",
    "drivers/misc", "drivers/video", "drivers/firewire", "drivers/atm", "drivers/pcmcia",
    "drivers/ata", "drivers/scsi/mpt3sas", "drivers/scsi/lpfc", "drivers/scsi/qla2xxx",
    "drivers/scsi/megaraid", "drivers/scsi/aic7xxx", "drivers/scsi/be2iscsi", "drivers/scsi/bfa",
    "drivers/scsi/qedf", "drivers/scsi/qedi", "drivers/scsi/smartpqi", "drivers/scsi/fnic",
    "drivers/scsi/csiostor", "drivers/scsi/pm8001", "drivers/scsi/mpi3mr", "drivers/scsi/elx",
    "drivers/scsi/aacraid", "drivers/scsi/hisi_sas", "drivers/scsi/arcmsr", "drivers/scsi/qla4xxx",
    "drivers/scsi/bnx2fc", "drivers/scsi/cxgbi", "drivers/scsi/snic", "drivers/scsi/esas2r",
    "drivers/net/wwan", "drivers/net/hamradio", "drivers/net/arcnet", "drivers/net/fddi",
    "drivers/crypto", "drivers/md/bcache", "drivers/nfc", "drivers/w1", "drivers/i2c",
    "drivers/spi", "drivers/gnss", "drivers/mfd", "drivers/regulator", "drivers/rtc",
    "drivers/power", "drivers/target", "drivers/uio", "drivers/vfio", "drivers/vhost",
    "drivers/xen", "drivers/hv", "drivers/fpga", "drivers/parport", "drivers/pinctrl",
    "drivers/gpio", "drivers/nvme", "drivers/memstick", "drivers/ptp", "drivers/dca",
    "net/wireless", "net/mac80211", "net/bluetooth", "net/nfc", "net/can", "net/ieee802154",
    "net/6lowpan", "net/mac802154", "net/rxrpc", "net/ceph", "net/sunrpc", "net/9p",
    "fs/nfs", "fs/nfsd", "fs/ceph", "fs/smb", "fs/ocfs2", "fs/gfs2", "fs/xfs", "fs/btrfs",
    "fs/f2fs", "fs/jfs", "fs/reiserfs", "fs/nilfs2", "fs/ubifs", "fs/afs", "fs/cifs",
    "fs/dlm", "fs/lockd", "fs/orangefs", "fs/coda", "fs/ntfs3", "fs/ntfs", "fs/hfsplus",
]

PRUNE_PATHS = [
    "usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale", "usr/share/lintian",
    "var/cache/apt/archives", "var/cache/apt/pkgcache.bin", "var/cache/apt/srcpkgcache.bin",
    "var/lib/apt/lists", "var/cache/debconf/templates.dat-old", "var/log/bootstrap.log",
]

MASKED_UNITS = [
    "apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_all.timer", "e2scrub_reap.service",
    "fstrim.timer", "man-db.timer", "systemd-networkd-wait-online.service",
    "getty@tty1.service", "systemd-journal-flush.service",
    # modules and features nothing in the lab uses; each costs seconds of the one vCPU at boot
    "modprobe@drm.service", "modprobe@efi_pstore.service", "modprobe@fuse.service",
    "modprobe@dm_mod.service", "modprobe@loop.service", "systemd-binfmt.service",
    "proc-sys-fs-binfmt_misc.automount",
]

# containerd stays enabled but starts once the machine has phoned home: its start costs ~12 s of
# CPU that would otherwise delay SSH.
CONTAINERD_DROPIN = """\
[Unit]
After=fleetlab-phone-home.service
"""

SSHD_CONFIG = """\
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
HostKey /etc/ssh/ssh_host_ed25519_key
"""

NETWORK = """\
[Match]
Type=ether

[Network]
DHCP=ipv4
IPv6AcceptRA=no
LinkLocalAddressing=no

[DHCPv4]
ClientIdentifier=mac
"""

# Reports "phoned home" to the boot service once sshd runs (bash's /dev/tcp: nothing to install).
PHONE_HOME = r"""#!/bin/bash
# fleetlab: tell the lab's boot service that this machine booted its installed OS.
read -r host port < /etc/fleetlab/boot-service || exit 0
mac=$(cat /sys/class/net/eth0/address 2>/dev/null)
for i in $(seq 1 120); do
  up=$(cut -d' ' -f1 /proc/uptime)
  if exec 3<>"/dev/tcp/$host/$port"; then
    printf 'GET /report?mac=%s&event=phoned-home&uptime=%s HTTP/1.0\r\nHost: %s\r\n\r\n' \
      "$mac" "$up" "$host" >&3
    if head -1 <&3 | grep -q ' 200 '; then
      exec 3>&-
      echo "FLEETLAB READY $up" > /dev/ttyS0
      exit 0
    fi
    exec 3>&-
  fi
  sleep 1
done
exit 1
"""

# Users a lease asks for (plunder's ``username``): same keys as root, passwordless sudo.
USERS = r"""#!/bin/sh
# fleetlab: create the users listed in /etc/fleetlab/users (written by the installer).
while read -r u; do
  [ -n "$u" ] || continue
  id "$u" >/dev/null 2>&1 || useradd -m -s /bin/bash "$u"
  install -d -m 700 -o "$u" -g "$u" "/home/$u/.ssh"
  install -m 600 -o "$u" -g "$u" /root/.ssh/authorized_keys "/home/$u/.ssh/authorized_keys"
  echo "$u ALL=(ALL) NOPASSWD:ALL" > "/etc/sudoers.d/fleetlab-$u"
  chmod 440 "/etc/sudoers.d/fleetlab-$u"
done < /etc/fleetlab/users
"""

USERS_UNIT = """\
[Unit]
Description=fleetlab: users the lease asked for
ConditionPathExists=/etc/fleetlab/users
Before=ssh.service

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/fleetlab-users

[Install]
WantedBy=multi-user.target
"""

PHONE_HOME_UNIT = """\
[Unit]
Description=fleetlab: report the installed OS up to the lab's boot service
After=ssh.service systemd-networkd.service
Wants=systemd-networkd.service

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/fleetlab-phone-home

[Install]
WantedBy=multi-user.target
"""


def _sha(*parts):
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else str(p).encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def rootfs_key():
    return _sha("rootfs-v1", SUITE, MIRROR, "minbase", ",".join(sorted(PACKAGES)))


def os_key():
    parts = [rootfs_key(), DISK_SIZE_MIB]
    with open(os.path.abspath(__file__), "rb") as f:
        parts.append(f.read())
    for name in sorted(os.listdir(INITRAMFS_DIR)):
        with open(os.path.join(INITRAMFS_DIR, name), "rb") as f:
            parts.append(name.encode() + f.read())
    busybox = shutil.which("busybox") or "/bin/busybox"
    parts.append(str(os.stat(busybox).st_size))
    return _sha(*parts)


@contextlib.contextmanager
def _lock(cache_dir):
    os.makedirs(cache_dir, exist_ok=True)
    with open(os.path.join(cache_dir, ".lock"), "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _log(log, msg):
    if log:
        log(msg)


def build_rootfs(cache_dir=DEFAULT_CACHE, log=print):
    """Directory of the debootstrapped root filesystem (built once per package list)."""
    final = os.path.join(cache_dir, "rootfs-" + rootfs_key())
    if os.path.exists(os.path.join(final, ".complete")):
        return final
    work = final + ".work"
    shutil.rmtree(work, ignore_errors=True)
    started = time.monotonic()
    _log(log, "image: debootstrap %s (%d packages) into %s" % (SUITE, len(PACKAGES), work))
    cmd = ["debootstrap", "--variant=minbase", "--include=" + ",".join(PACKAGES), SUITE, work, MIRROR]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError("debootstrap failed:\n" + proc.stdout[-3000:] + proc.stderr[-3000:])
    with open(os.path.join(work, ".complete"), "w") as f:
        f.write("%.1f\n" % (time.monotonic() - started))
    os.rename(work, final)
    _log(log, "image: debootstrap done in %.0f s" % (time.monotonic() - started))
    return final


def _kernel_version(root):
    versions = sorted(os.listdir(os.path.join(root, "usr/lib/modules")))
    if not versions:
        raise RuntimeError("no kernel in the image rootfs")
    return versions[-1]


def _write(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def _symlink(target, path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.lexists(path):
        os.remove(path)
    os.symlink(target, path)


def customize(root, kver):
    """Turn the debootstrapped tree into the lab's OS (everything machine-specific comes later,
    from the boot service, when a machine is installed)."""
    _write(os.path.join(root, "etc/hostname"), "fleetlab\n")
    _write(os.path.join(root, "etc/hosts"), "127.0.0.1 localhost\n127.0.1.1 fleetlab\n")
    _write(os.path.join(root, "etc/fstab"), "/dev/sda1 / ext4 defaults,noatime 0 0\n")
    _write(os.path.join(root, "etc/resolv.conf"), "")
    _write(os.path.join(root, "etc/machine-id"), "")
    _write(os.path.join(root, "etc/systemd/network/20-lab.network"), NETWORK)
    sd = os.path.join(root, "etc/systemd/system")
    _symlink("/lib/systemd/system/systemd-networkd.service",
             os.path.join(sd, "multi-user.target.wants/systemd-networkd.service"))
    _symlink("/lib/systemd/system/systemd-networkd.socket",
             os.path.join(sd, "sockets.target.wants/systemd-networkd.socket"))
    for unit in MASKED_UNITS:
        _symlink("/dev/null", os.path.join(sd, unit))
    _write(os.path.join(root, "etc/ssh/sshd_config.d/fleetlab.conf"), SSHD_CONFIG)
    for name in os.listdir(os.path.join(root, "etc/ssh")):
        if name.startswith("ssh_host_"):
            os.remove(os.path.join(root, "etc/ssh", name))
    _write(os.path.join(root, "usr/local/sbin/fleetlab-phone-home"), PHONE_HOME, 0o755)
    _write(os.path.join(sd, "fleetlab-phone-home.service"), PHONE_HOME_UNIT)
    _symlink("/etc/systemd/system/fleetlab-phone-home.service",
             os.path.join(sd, "multi-user.target.wants/fleetlab-phone-home.service"))
    _write(os.path.join(sd, "containerd.service.d/fleetlab.conf"), CONTAINERD_DROPIN)
    _write(os.path.join(root, "usr/local/sbin/fleetlab-users"), USERS, 0o755)
    _write(os.path.join(sd, "fleetlab-users.service"), USERS_UNIT)
    _symlink("/etc/systemd/system/fleetlab-users.service",
             os.path.join(sd, "multi-user.target.wants/fleetlab-users.service"))
    os.makedirs(os.path.join(root, "root/.ssh"), mode=0o700, exist_ok=True)
    # journald: keep the journal in memory (no flush to disk at boot)
    _write(os.path.join(root, "etc/systemd/journald.conf.d/fleetlab.conf"),
           "[Journal]\nStorage=volatile\nRuntimeMaxUse=16M\n")
    for rel in PRUNE_PATHS:
        p = os.path.join(root, rel)
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p)
            os.makedirs(p)
        elif os.path.lexists(p):
            os.remove(p)
    moddir = os.path.join(root, "usr/lib/modules", kver, "kernel")
    for rel in PRUNE_MODULES:
        shutil.rmtree(os.path.join(moddir, rel), ignore_errors=True)
    subprocess.run(["depmod", "-b", root, kver], check=True, capture_output=True)
    for name in os.listdir(os.path.join(root, "boot")):
        if name.startswith("initrd.img-"):
            os.remove(os.path.join(root, "boot", name))


def _module_order(root, kver, wanted):
    """Module files for ``wanted`` and their dependencies, dependencies first."""
    base = os.path.join(root, "usr/lib/modules", kver)
    deps = {}
    with open(os.path.join(base, "modules.dep")) as f:
        for line in f:
            path, _, rest = line.partition(":")
            deps[path] = rest.split()
    by_name = {os.path.basename(p).split(".ko")[0].replace("-", "_"): p for p in deps}
    order = []

    def visit(path):
        if path in order:
            return
        for d in reversed(deps.get(path, [])):
            visit(d)
        order.append(path)

    for name in wanted:
        path = by_name.get(name)
        if path is None:
            continue  # built into the kernel
        visit(path)
    return [os.path.join(base, p) for p in order]


def build_initramfs(root, kver, out):
    """The busybox initramfs (``initramfs/init``) with the virtio + ext4 modules of ``kver``."""
    busybox = shutil.which("busybox") or "/bin/busybox"
    with tempfile.TemporaryDirectory() as d:
        for sub in ("bin", "proc", "sys", "dev", "tmp", "lib/mod", "newroot", "target"):
            os.makedirs(os.path.join(d, sub))
        shutil.copy(busybox, os.path.join(d, "bin/busybox"))
        applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True)
        for a in applets.stdout.split():
            if not os.path.exists(os.path.join(d, "bin", a)):
                os.symlink("busybox", os.path.join(d, "bin", a))
        os.symlink("bin", os.path.join(d, "sbin"))
        names = []
        for path in _module_order(root, kver, INITRAMFS_MODULES):
            name = os.path.basename(path)
            if name.endswith(".ko.xz") or name.endswith(".ko.zst"):
                raise RuntimeError("compressed kernel modules are not supported: %s" % name)
            shutil.copy(path, os.path.join(d, "lib/mod", name))
            names.append(name[:-3])
        _write(os.path.join(d, "lib/modules.order"), "\n".join(names) + "\n")
        shutil.copy(os.path.join(INITRAMFS_DIR, "init"), os.path.join(d, "init"))
        shutil.copy(os.path.join(INITRAMFS_DIR, "udhcpc.script"), os.path.join(d, "bin/udhcpc.script"))
        os.chmod(os.path.join(d, "init"), 0o755)
        os.chmod(os.path.join(d, "bin/udhcpc.script"), 0o755)
        files = subprocess.run("find . | LC_ALL=C sort", shell=True, cwd=d, capture_output=True,
                               check=True).stdout
        cpio = subprocess.run(["cpio", "-o", "-H", "newc", "--quiet", "-R", "0:0"], cwd=d,
                              input=files, capture_output=True, check=True).stdout
    with open(out, "wb") as f:
        proc = subprocess.run(["gzip", "-9", "-n"], input=cpio, stdout=f, check=True)
    return proc


def make_disk(root, kver, out, size_mib=DISK_SIZE_MIB):
    """Raw MBR disk: one bootable ext4 partition (LABEL=fleetroot) from ``root``, extlinux."""
    if os.path.exists(out):
        os.remove(out)
    with open(out, "wb") as f:
        f.truncate(size_mib * BLOCK)
    subprocess.run(["sfdisk", "-q", out], input=b"start=2048, type=83, bootable\n", check=True)
    with open("/usr/lib/syslinux/mbr/mbr.bin", "rb") as f:
        mbr = f.read(440)
    with open(out, "r+b") as f:
        f.write(mbr)
    offset = 2048 * 512
    part_kib = (size_mib * BLOCK - offset) // 1024
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-L", "fleetroot", "-O", "^metadata_csum_seed",
                    "-E", "offset=%d,lazy_itable_init=1" % offset, "-d", root, out, "%dk" % part_kib],
                   check=True)
    mnt = tempfile.mkdtemp(prefix="fleetlab-mnt-")
    subprocess.run(["mount", "-o", "loop,offset=%d" % offset, out, mnt], check=True)
    try:
        conf = os.path.join(mnt, "boot/extlinux/extlinux.conf")
        _write(conf, "DEFAULT linux\nTIMEOUT 0\nPROMPT 0\nLABEL linux\n"
               "  KERNEL /boot/vmlinuz-%s\n  INITRD /boot/fleetlab-initrd.gz\n"
               "  APPEND console=ttyS0,115200 quiet loglevel=3 fleetlab.mode=root net.ifnames=0 "
               "systemd.show_status=false\n" % kver)
        subprocess.run(["extlinux", "--install", os.path.join(mnt, "boot/extlinux")], check=True,
                       capture_output=True)
    finally:
        subprocess.run(["umount", mnt], check=True)
        os.rmdir(mnt)


def make_stream(disk, map_out, data_out):
    """Write the runs of non-zero blocks of ``disk`` (map) and their compressed bytes (data)."""
    runs = []
    zero = bytes(BLOCK)
    with open(disk, "rb") as src, open(data_out, "wb") as dst:
        proc = subprocess.Popen(["busybox", "lzop", "-1", "-c"], stdin=subprocess.PIPE, stdout=dst)
        idx = 0
        while True:
            blk = src.read(BLOCK)
            if not blk:
                break
            if blk != zero[:len(blk)]:
                if len(blk) < BLOCK:
                    blk += zero[len(blk):]
                if runs and runs[-1][0] + runs[-1][1] == idx:
                    runs[-1][1] += 1
                else:
                    runs.append([idx, 1])
                proc.stdin.write(blk)
            idx += 1
        proc.stdin.close()
        if proc.wait() != 0:
            raise RuntimeError("lzop failed")
    with open(map_out, "w") as f:
        for seek, count in runs:
            f.write("%d %d\n" % (seek, count))
    return sum(c for _, c in runs)


USED_STAMP = ".used"
PRUNE_AFTER = 24 * 3600


def _mark_used(path):
    with open(os.path.join(path, USED_STAMP), "w"):
        pass  # the stamp's mtime is the last time a lab started from this entry


def _last_used(path):
    for probe in (os.path.join(path, USED_STAMP), path):
        try:
            return os.stat(probe).st_mtime
        except OSError:
            continue
    return 0.0


def prune(cache_dir=DEFAULT_CACHE, older_than=PRUNE_AFTER, log=print):
    """Remove images and root filesystems of other recipes that no lab started from for
    ``older_than`` seconds (and build leftovers); the current recipe's entries always stay.
    Returns the names removed."""
    keep = {"rootfs-" + rootfs_key(), "os-" + os_key()}
    now = time.time()
    removed = []
    if not os.path.isdir(cache_dir):
        return removed
    with _lock(cache_dir):
        for name in sorted(os.listdir(cache_dir)):
            path = os.path.join(cache_dir, name)
            if name in keep or not name.startswith(("rootfs-", "os-")) or not os.path.isdir(path):
                continue
            if now - _last_used(path) < older_than:
                continue
            shutil.rmtree(path, ignore_errors=True)
            removed.append(name)
    for name in removed:
        _log(log, "image cache: removed %s" % name)
    return removed


class NotPrepared(RuntimeError):
    """The cache lacks what set-up (``fleetlab prepare``) puts there; the lab downloads nothing."""


def cached_os(cache_dir=DEFAULT_CACHE):
    """The artifacts of the current recipe from the cache, never building (building downloads
    from the Debian mirror: that is set-up's job, not the lab's)."""
    final = os.path.join(cache_dir, "os-" + os_key())
    if not os.path.exists(os.path.join(final, "manifest.json")):
        raise NotPrepared("the lab's OS image (recipe %s) is not in the cache %s: run `fleetlab prepare%s` "
                          "once (scripts/setup.sh does)" % (os_key(), cache_dir, "" if cache_dir == DEFAULT_CACHE
                                                              else " --cache %s" % cache_dir))
    _mark_used(final)
    return final


def build_os(cache_dir=DEFAULT_CACHE, log=print):
    """Directory with the boot service's artifacts (see module docstring); built when missing.
    Building a new recipe prunes the entries of old ones unused for a day."""
    final = os.path.join(cache_dir, "os-" + os_key())
    if os.path.exists(os.path.join(final, "manifest.json")):
        _mark_used(final)
        return final
    with _lock(cache_dir):
        if os.path.exists(os.path.join(final, "manifest.json")):
            _mark_used(final)
            return final
        t0 = time.monotonic()
        rootfs = build_rootfs(cache_dir, log)
        t1 = time.monotonic()
        work = final + ".work"
        shutil.rmtree(work, ignore_errors=True)
        os.makedirs(work)
        tree = os.path.join(work, "rootfs")
        _log(log, "image: customizing a copy of %s" % os.path.basename(rootfs))
        subprocess.run(["cp", "-a", "--reflink=auto", rootfs, tree], check=True)
        kver = _kernel_version(tree)
        customize(tree, kver)
        build_initramfs(tree, kver, os.path.join(work, "initrd.gz"))
        shutil.copy(os.path.join(work, "initrd.gz"), os.path.join(tree, "boot/fleetlab-initrd.gz"))
        shutil.copy(os.path.join(tree, "boot/vmlinuz-" + kver), os.path.join(work, "vmlinuz"))
        disk = os.path.join(work, "disk.raw")
        _log(log, "image: making the %d MiB disk image" % DISK_SIZE_MIB)
        make_disk(tree, kver, disk)
        shutil.rmtree(tree)
        blocks = make_stream(disk, os.path.join(work, "os.map"), os.path.join(work, "os.data"))
        manifest = {
            "kernel": kver, "packages": PACKAGES, "suite": SUITE, "disk_mib": DISK_SIZE_MIB,
            "written_mib": blocks, "data_bytes": os.path.getsize(os.path.join(work, "os.data")),
            "initrd_bytes": os.path.getsize(os.path.join(work, "initrd.gz")),
            "rootfs_seconds": round(t1 - t0, 1), "image_seconds": round(time.monotonic() - t1, 1),
            "rootfs_key": rootfs_key(), "os_key": os_key(),
        }
        _write(os.path.join(work, "manifest.json"), json.dumps(manifest, indent=1) + "\n")
        os.rename(work, final)
        _log(log, "image: %s: %d MiB to write, %.0f MiB compressed, built in %.0f s"
             % (os.path.basename(final), blocks, manifest["data_bytes"] / BLOCK, time.monotonic() - t0))
    _mark_used(final)
    prune(cache_dir, log=log)
    return final


if __name__ == "__main__":
    print(build_os())
