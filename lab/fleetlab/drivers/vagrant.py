"""The vagrant driver: the libvirt lab's machines made by Vagrant (python-vagrant + vagrant-libvirt).

For users who already run mini-lab-style Vagrant setups. ``lab/Vagrantfile`` describes PXE-only
machines with no box (blank disks on virtio-scsi, network boot first): they behave exactly like
the libvirt driver's VMs -- reboot loop, install on lease, SSH, wipe -- because everything but the
creation of the domains is shared with it (namespace, libvirtd, isolated network, boot service,
image, installer). Vagrant only defines and starts the domains (``vagrant up --no-provision``) and
removes them (``vagrant destroy -f`` on tear-down); with no box it never connects to a machine,
so it can run in the host namespace while the machines live in the lab's.

Differences from the libvirt driver: disks live in a lab-owned libvirt storage pool in
``/run/fleetlab/<id>/pool`` (QEMU runs as libvirt-qemu there), serial consoles are written
to ``/var/log/libvirt/qemu/fl<id>-N.console.log`` (linked from ``STATE/vm/``), SeaBIOS shows its
boot menu prompt (vagrant-libvirt enables it with a boot order), Vagrant's output goes to
``STATE/vm/vagrant.log``. Options as for the libvirt driver.
"""
import os
import time

from . import libvirt as _libvirt_driver


def _lab_class():
    from ..vm import vagrantenv
    from ..vm.lab import Machine, VMLab

    class VagrantVMLab(VMLab):
        """VMLab whose domains Vagrant creates (all at once, from one spec)."""

        def setup(self):
            reason = vagrantenv.missing()
            if reason:
                raise RuntimeError(reason)
            super().setup()
            self.pool_name = self.ns
            # the same path in the lab's and in libvirtd's mount namespace (not under /var/lib/libvirt)
            self.pool_dir = os.path.join(self.record.data["libvirt_root"], "pool")
            os.makedirs(self.pool_dir, exist_ok=True)
            xml = ("<pool type='dir'><name>%s</name><target><path>%s</path></target></pool>"
                   % (self.pool_name, self.pool_dir))
            try:
                old = self.conn.storagePoolLookupByName(self.pool_name)
                if old.isActive():
                    old.destroy()
                old.undefine()
            except Exception:  # libvirtError: no such pool
                pass
            pool = self.conn.storagePoolDefineXML(xml)
            self.record.add("pools", self.pool_name)
            pool.create()
            self.vagrant_info = {"spec": os.path.join(self.dir, "vagrant-spec.json"),
                                 "dotfile": os.path.join(self.dir, "vagrant")}
            self.record.set("vagrant", self.vagrant_info)

        def add_machines(self, macs):
            from ..vm import netns as _netns

            created = []
            for mac in macs:
                index = len(self.machines) + 1
                name = "%s-%d" % (self.ns, index)
                ip = str(self._static_pool[index - 1])
                console = os.path.join("/var/log/libvirt/qemu", name + ".console.log")
                m = Machine(index, mac, name, ip, None, console)
                self.machines[mac] = m
                self.by_ip[ip] = m
                self._set_dhcp_host(mac, ip)
                m.forwarder = _netns.Forwarder(self.boot_ns, ip, 22)
                self.record.add("domains", name)
                self.record.add("consoles", console)
                link = os.path.join(self.dir, name + ".console.log")
                if os.path.lexists(link):
                    os.remove(link)
                os.symlink(console, link)
                created.append(m)
            vagrantenv.write_spec(self.vagrant_info["spec"], {
                "uri": self.uri, "network": self.net_name, "driver": self.domain_type, "memory": self.memory_mib,
                "cpus": self.vcpus, "pool": self.pool_name,
                "machines": [{"name": m.name, "mac": m.mac, "console": m.console} for m in self.machines.values()],
            })
            t0 = time.time()
            vagrantenv.up(self.vagrant_info, os.path.join(self.dir, "vagrant.log"))
            for m in created:
                m.started = time.time()
            self.log("vm: vagrant up of %d machines in %.1f s" % (len(created), time.time() - t0))
            self._write_access()
            return created

    return VagrantVMLab


class VagrantDriver(_libvirt_driver.LibvirtDriver):
    name = "vagrant"

    def _make_lab(self):
        if self.hypervisor_specs:
            raise ValueError("the vagrant driver runs its VMs on the lab's own libvirtd only: --hypervisor "
                             "needs the libvirt driver")
        cls = _lab_class()
        return cls(self.state_dir, network=self.lease_network, cache_dir=self.cache_dir, memory_mib=self.memory,
                   vcpus=self.vcpus, accel=self.accel, loop_wait=self.loop_wait, log=_libvirt_driver.log.info)

    def _create_vms(self, machines, placed=None):
        return self.vm.add_machines([m["mac"] for m in machines])


DRIVER = VagrantDriver
