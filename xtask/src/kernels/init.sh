#!/bin/busybox sh
# /init of the guest initramfs that `cargo xtask test-kernels` boots
# (xtask/src/kernels/image.rs packs it with a static busybox and the modules
# listed in /mods.list, in load order).
#
# It mounts the host's / (shared by QEMU over virtio-9p, tag `hostroot`) at
# /newroot, puts the kernel filesystems under it, chroots into it and runs
# the guest script `$fsjrun/guest.sh` with bash, as root. The script's output
# goes to the second serial port (ttyS1: the host reads it from QEMU's
# stdout); its exit status is written to `$fsjrun/rc` on the host through 9p.
# Kernel command line: fsjrun=<run directory> fsjkdir=<unpacked kernel tree>.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /mods.list); do insmod /mods/$m || echo "init: insmod $m failed"; done
for arg in $(cat /proc/cmdline); do
  case $arg in fsjrun=*) run=${arg#fsjrun=} ;; fsjkdir=*) kdir=${arg#fsjkdir=} ;; esac
done
R=/newroot
mkdir -p $R
if ! mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,cache=loose,access=any hostroot $R; then
  echo "init: cannot mount the host root over 9p"
  poweroff -f
fi
mount --move /proc $R/proc
mount --move /sys $R/sys
mount --move /dev $R/dev
mount -t tmpfs -o mode=1777 tmpfs $R/tmp
mount -t tmpfs -o mode=755 tmpfs $R/run
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts devpts $R/dev/pts
mount -t tmpfs tmpfs $R/dev/shm
mount -t tracefs tracefs $R/sys/kernel/tracing 2>/dev/null
mount -t debugfs debugfs $R/sys/kernel/debug 2>/dev/null
mount -t bpf bpf $R/sys/fs/bpf 2>/dev/null
mount -t securityfs securityfs $R/sys/kernel/security 2>/dev/null
mount -t cgroup2 cgroup2 $R/sys/fs/cgroup 2>/dev/null
# The guest kernel's own modules where modprobe looks (the host keeps an
# empty /usr/lib/modules for this; the bind mount is the guest's only).
[ -d $R/usr/lib/modules ] && mount --bind $R$kdir/lib/modules $R/usr/lib/modules
ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up
stty -F $R/dev/ttyS1 raw -echo 2>/dev/null
echo "init: uptime at script start: $(cut -d' ' -f1 /newroot/proc/uptime) s"
chroot $R /bin/bash $run/guest.sh > $R/dev/ttyS1 2>&1 < /dev/null
echo $? > $R$run/rc
echo "init: uptime at script end: $(cut -d' ' -f1 /newroot/proc/uptime) s"
sync
umount $R/usr/lib/modules 2>/dev/null
sync
poweroff -f
