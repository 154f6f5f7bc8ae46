"""libvirt XML for the lab: one isolated network (IPv4 + IPv6 RA, iPXE bootfile URL, static DHCP
host entries) and one domain per machine (network first, disk second, SeaBIOS reboot on boot
failure, serial console logged to a file)."""
from xml.sax.saxutils import quoteattr


def network_xml(name, bridge, address, prefix, dhcp_start, dhcp_end, bootfile, hosts=(),
                ipv6="fd77::1", ipv6_prefix=64, mtu=None):
    """``hosts``: iterable of (mac, ip). No ``<forward>``: the network is isolated. ``mtu``: the
    bridge's and the taps' MTU, which libvirt's dnsmasq also hands out (DHCP option 26)."""
    host_lines = "".join("        <host mac=%s ip=%s/>\n" % (quoteattr(mac), quoteattr(ip)) for mac, ip in hosts)
    return """<network>
  <name>%(name)s</name>
  <bridge name=%(bridge)s stp='off' delay='0'/>
%(mtu)s  <ip address=%(address)s prefix='%(prefix)d'>
    <dhcp>
      <range start=%(start)s end=%(end)s/>
%(hosts)s      <bootp file=%(bootfile)s/>
    </dhcp>
  </ip>
  <ip family='ipv6' address=%(ipv6)s prefix='%(ipv6_prefix)d'/>
</network>
""" % {"name": name, "bridge": quoteattr(bridge), "address": quoteattr(address), "prefix": prefix,
       "start": quoteattr(dhcp_start), "end": quoteattr(dhcp_end), "hosts": host_lines,
       "bootfile": quoteattr(bootfile), "ipv6": quoteattr(ipv6), "ipv6_prefix": ipv6_prefix,
       "mtu": "  <mtu size='%d'/>\n" % mtu if mtu else ""}


def dhcp_host_xml(mac, ip):
    return "<host mac=%s ip=%s/>" % (quoteattr(mac), quoteattr(ip))


def domain_xml(name, mac, network, disk_path, console_log, memory_mib=512, vcpus=1, domain_type="qemu",
               uuid=None, bridge=None, mtu=None):
    """A blank "server": virtio NIC on ``network`` (boot order 1), a virtio-scsi disk seen as
    /dev/sda (boot order 2, discard passed through), SeaBIOS retrying after 1 s when nothing
    boots, serial console written by virtlogd to ``console_log``. QEMU runs as root (static DAC
    label) so that disks and logs may live in the lab's state directory. ``bridge``: the NIC sits
    on that bridge instead of the libvirt network (a remote hypervisor's side of the lab network);
    ``mtu``: the NIC's MTU, which the guest learns through virtio (``host_mtu``)."""
    cpu = "<cpu mode='host-passthrough'/>" if domain_type == "kvm" else ""
    uuid_el = "<uuid>%s</uuid>" % uuid if uuid else ""
    return """<domain type=%(type)s>
  <name>%(name)s</name>
  %(uuid)s
  <memory unit='MiB'>%(mem)d</memory>
  <vcpu>%(vcpus)d</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <bios useserial='yes' rebootTimeout='1000'/>
  </os>
  <features><acpi/></features>
  %(cpu)s
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>restart</on_crash>
  <devices>
    <controller type='scsi' index='0' model='virtio-scsi'/>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' cache='unsafe' discard='unmap' detect_zeroes='unmap'/>
      <source file=%(disk)s/>
      <target dev='sda' bus='scsi'/>
      <boot order='2'/>
    </disk>
    <interface type=%(nic_type)s>
      <source %(nic_source)s/>
      <mac address=%(mac)s/>%(mtu)s
      <model type='virtio'/>
      <boot order='1'/>
    </interface>
    <serial type='pty'>
      <log file=%(log)s append='on'/>
    </serial>
    <console type='pty'/>
    <memballoon model='none'/>
    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
  </devices>
  <seclabel type='static' model='dac' relabel='no'><label>+0:+0</label></seclabel>
</domain>
""" % {"type": quoteattr(domain_type), "name": name, "uuid": uuid_el, "mem": memory_mib, "vcpus": vcpus,
       "cpu": cpu, "disk": quoteattr(disk_path), "network": quoteattr(network), "mac": quoteattr(mac),
       "log": quoteattr(console_log), "nic_type": quoteattr("bridge" if bridge else "network"),
       "nic_source": ("bridge=%s" % quoteattr(bridge)) if bridge else ("network=%s" % quoteattr(network)),
       "mtu": "\n      <mtu size='%d'/>" % mtu if mtu else ""}


_DEVICES = {"network": "interface", "disk": "disk"}


def boot_order(xml):
    """The firmware boot order of a domain's XML: a tuple of ``network`` / ``disk``, from the
    per-device ``<boot order>`` (as the lab and a Redfish BMC write it) or ``<os><boot dev>``."""
    import xml.etree.ElementTree as ET

    tree = ET.fromstring(xml)
    legacy = [b.get("dev") for b in tree.findall("os/boot")]
    if legacy:
        return tuple({"network": "network", "hd": "disk"}[d] for d in legacy if d in ("network", "hd"))
    ranked = []
    for kind, tag in _DEVICES.items():
        for dev in tree.findall("devices/" + tag):
            if tag == "disk" and dev.get("device", "disk") != "disk":
                continue
            boot = dev.find("boot")
            if boot is not None:
                ranked.append((int(boot.get("order")), kind))
    return tuple(kind for _, kind in sorted(ranked))


def with_boot_order(xml, order):
    """The domain XML with boot ``order`` (``network`` / ``disk``; a device not named does not boot)."""
    import xml.etree.ElementTree as ET

    tree = ET.fromstring(xml)
    for os_el in tree.findall("os"):
        for boot in os_el.findall("boot"):
            os_el.remove(boot)
    for tag in _DEVICES.values():
        for dev in tree.findall("devices/" + tag):
            for boot in dev.findall("boot"):
                dev.remove(boot)
    for index, kind in enumerate(order, start=1):
        dev = tree.find("devices/" + _DEVICES[kind])
        ET.SubElement(dev, "boot", order=str(index))
    return ET.tostring(tree, encoding="unicode")
