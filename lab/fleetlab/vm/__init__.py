"""Real virtual machines for the lab: a network namespace with its own libvirtd, an isolated
libvirt network, an iPXE boot service, and the OS image + installer the lab builds itself.

Modules:
  host     -- network namespace, libvirtd/virtlogd started by the lab, KVM probe, crash-safe record
  xmldefs  -- libvirt network and domain XML
  bootsvc  -- the HTTP boot service (iPXE scripts per MAC, installer files, progress reports)
  images   -- OS image and installer initramfs built from Debian packages, cached by recipe hash
  netns    -- sockets inside the namespace and loopback TCP forwards into it (SSH on 127.0.0.1)
  lab      -- VMLab: the pieces above put together (used by the libvirt driver)
"""
