"""metal-api responses: machines (allocation, events, liveliness), images, networks, projects."""

import time
import uuid


from ... import catalog as C
from ... import store as P
from ...util import rfc3339nano
from .wire import ApiError


class RenderMixin:
    """Rendering of pool rows as metal-api answers; part of :class:`MetalFace`."""

    # -- catalogue ------------------------------------------------------------------------
    def catalog(self):
        return self.pool.kv_get("metal.catalog")

    @staticmethod
    def _stamp(entry):
        out = dict(entry)
        for k in ("created", "changed"):
            if k in out:
                out[k] = rfc3339nano(out[k])
        if "expirationDate" in out:
            out["expirationDate"] = rfc3339nano(out["expirationDate"])
        return out

    def _image_resp(self, image):
        if image is None:
            return None
        out = self._stamp(image)
        out.setdefault("usedby", [])
        return out

    def _resolve_image(self, cat, iid):
        if not iid:
            return None
        images = cat["images"]
        if iid in images:
            return images[iid]
        # semver "most recent" resolution: debian-13 -> newest debian-13.x
        cands = sorted((k for k in images if k.startswith(iid + ".")),
                       key=lambda k: [int(x) if x.isdigit() else x for x in k[len(iid) + 1:].split(".")])
        return images[cands[-1]] if cands else None

    def _network_resp(self, n):
        out = {
            "id": n["id"], "name": n.get("name", ""), "description": n.get("description", ""),
            "partitionid": n.get("partitionid", ""), "projectid": n.get("projectid", ""),
            "parentnetworkid": n.get("parentnetworkid", ""), "prefixes": n["prefixes"],
            "destinationprefixes": n.get("destinationprefixes", []), "nat": n.get("nat", False),
            "privatesuper": n.get("privatesuper", False), "underlay": n.get("underlay", False),
            "shared": n.get("shared", False), "vrf": n.get("vrf", 0), "vrfshared": False,
            "labels": n.get("labels", {}), "additionalAnnouncableCIDRs": [],
            "networktype": ("privatesuper" if n.get("privatesuper") else
                            "external" if n.get("nat") else "privateprimaryunshared"),
            "nattype": "ipv4-masquerade" if n.get("nat") else "none",
            "defaultchildprefixlength": {"IPv4": 22} if n.get("privatesuper") else {},
            "usage": {"available_ips": 0, "used_ips": 0, "available_prefixes": 0, "used_prefixes": 0},
            "consumption": {"ipv4": {"available_ips": 0, "used_ips": 0, "available_prefixes": 0,
                                     "used_prefixes": 0}},
            "created": rfc3339nano(C._T0), "changed": rfc3339nano(C._T0),
        }
        return out

    def _project_resp(self, p):
        return {"meta": {"id": p["id"], "kind": "Project", "apiversion": "v1", "version": 0,
                         "created_time": rfc3339nano(p["created"]), "updated_time": rfc3339nano(p["updated"]),
                         "annotations": {}, "labels": p.get("labels", [])},
                "name": p["name"], "description": p.get("description", ""), "tenant_id": p["tenant_id"],
                "quotas": {}}

    # -- machine rendering -----------------------------------------------------------------
    def _liveliness(self, m, events, now):
        if self.driver.virtual_loop and m["power"] == "on":
            return "Alive"
        last = max([m["last_seen"] or 0] + [e[0] for e in events[:1]])
        if now - last <= 300:
            return "Alive"
        return "Unknown" if m["lease_name"] is not None else "Dead"

    def render(self, m, events, ips, cat, now=None):
        now = time.time() if now is None else now
        lease = m["lease"] or {}
        tags = ["%s=%s" % (k, v) if v != "" else k for k, v in sorted(m["labels"].items())]
        allocation = None
        if m["lease_name"] is not None:
            allocation = self._allocation(m, lease, ips, cat)
            for t in lease.get("tags") or []:
                if t not in tags:
                    tags.append(t)
            for t in self._system_tags(m, lease):
                if t not in tags:
                    tags.append(t)
        log = [{"time": rfc3339nano(t), "event": ev, "message": msg} for t, ev, msg in events]
        last_time = events[0][0] if events else None
        if last_time is not None and m.get("event_time"):
            last_time = max(last_time, m["event_time"])
        if last_time is not None and self.driver.virtual_loop and m["power"] == "on" and \
                m["state"] in (P.UNLEASED, P.PROVISIONED):
            # the hammer's "Alive" (in the loop) and metal-core's repeated "Phoned Home" refresh the time
            # every minute without adding log entries
            last_time += ((now - last_time) // 60) * 60
        ev = {"log": log, "last_event_time": rfc3339nano(last_time),
              "crash_loop": bool(m["crash_loop"]), "failed_machine_reclaim": bool(m["failed_reclaim"])}
        if m["last_error"]:
            le = m["last_error"]
            ev["last_error_event"] = {"time": rfc3339nano(le["time"]), "event": le["event"],
                                      "message": le["message"]}
        state = {"value": m["mstate"], "description": m["mstate_description"],
                 "metal_hammer_version": P.HAMMER_VERSION}
        if m["mstate_issuer"]:
            state["issuer"] = m["mstate_issuer"]
        stamped = cat.setdefault("_stamped", {})
        key = ("p", m["partition"])
        if key not in stamped:
            part = cat["partitions"].get(m["partition"])
            stamped[key] = self._stamp(part) if part else None
        part = stamped[key]
        key = ("s", m["size"])
        if key not in stamped:
            size = cat["sizes"].get(m["size"])
            stamped[key] = self._stamp(size) if size else None
        size = stamped[key]
        return {
            "id": m["id"], "name": "", "description": "",
            "partition": part,
            "rackid": m["rack"],
            "size": size,
            "hardware": {
                "memory": m["memory"], "cpu_cores": 0,
                "cpus": [{"vendor": "GenuineIntel", "model": "Intel(R) Xeon(R) CPU (fleetlab)",
                          "cores": m["cpus"], "threads": m["cpus"] * 2}],
                "disks": [{"name": "/dev/sda", "size": m["disk"]}],
                "nics": [{"mac": m["mac"], "name": "eth0", "identifier": m["mac"],
                          "neighbors": [{"mac": "aa:bb:cc:00:%s" % m["rack"][-2:].rjust(2, "0")[:2] + ":01",
                                         "name": "Ethernet0", "identifier": "Ethernet0", "neighbors": []}]}],
            },
            "bios": {"version": "2.1.0", "vendor": m["vendor"] or "American Megatrends Inc.", "date": "01/15/2025"},
            "allocation": allocation,
            "state": state,
            "ledstate": {"value": m["led"], "description": m["led_description"]},
            "liveliness": self._liveliness(m, events, now),
            "events": ev,
            "tags": tags,
            "created": rfc3339nano(m["created"]),
            "changed": rfc3339nano(m["changed"]),
        }

    def _system_tags(self, m, lease):
        out = ["machine.metal-stack.io/rack=%s" % m["rack"]]
        if lease.get("asn"):
            out.insert(0, "machine.metal-stack.io/network.primary.asn=%d" % lease["asn"])
        out.append("machine.metal-stack.io/chassis=%s" % m["id"][-12:])
        return out

    def _allocation(self, m, lease, ips, cat):
        image = self._resolve_image(cat, m["image"]) if m["lease_face"] == "metal" else None
        networks = []
        by_net = {}
        for net_id, addr in ips:
            by_net.setdefault(net_id, []).append(addr)
        for spec in lease.get("networks") or []:
            n = cat["networks"].get(spec["networkid"])
            if n is None:
                continue
            private = bool(n.get("projectid"))
            networks.append({
                "networkid": n["id"], "prefixes": n["prefixes"], "ips": by_net.get(n["id"], []),
                "destinationprefixes": n.get("destinationprefixes", []),
                "networktype": "privateprimaryunshared" if private else "external",
                "vrf": n.get("vrf", 0), "asn": lease.get("asn", C.ASN_BASE), "nat": n.get("nat", False),
                "private": private, "underlay": False, "projectid": n.get("projectid", ""),
                "networktypev2": "child" if private else "external",
                "nattypev2": "ipv4-masq" if n.get("nat") else "none",
            })
        out = {
            "created": rfc3339nano(m["leased_at"]),
            "creator": lease.get("creator") or ("plunder" if m["lease_face"] == "plunder" else ""),
            "name": m["lease_name"] or "",
            "project": m["project"] or "",
            "image": self._image_resp(image),
            "filesystemlayout": None,
            "hostname": m["hostname"] or "",
            "ssh_pub_keys": list(lease.get("ssh_pub_keys") or []),
            "succeeded": False,
            "reinstall": bool(lease.get("reinstall")),
            "boot_info": None,
            "role": "machine",
            "vpn": None,
            "allocationuuid": lease.get("allocationuuid") or str(uuid.uuid5(uuid.NAMESPACE_OID, m["id"])),
            "networks": networks,
        }
        if lease.get("description"):
            out["description"] = lease["description"]
        if lease.get("user_data"):
            out["user_data"] = lease["user_data"]
        if lease.get("dns_servers"):
            out["dns_servers"] = lease["dns_servers"]
        if lease.get("ntp_servers"):
            out["ntp_servers"] = lease["ntp_servers"]
        if m["disk_state"] == "os" and image is not None:
            out["boot_info"] = {"image_id": image["id"], "primary_disk": "/dev/sda", "os_partition": "/dev/sda2",
                                "initrd": "boot/initrd.img", "cmdline": "console=ttyS0,115200n8",
                                "kernel": "boot/vmlinuz", "bootloaderid": image["name"]}
        return out

    def _render_many(self, machines):
        cat = self.catalog()
        ids = [m["id"] for m in machines]
        events = self.pool.events(ids)
        ips = {}
        leased = [m["id"] for m in machines if m["lease_name"] is not None]
        if leased:
            for mid, net, addr in self.pool.ips(leased):
                ips.setdefault(mid, []).append((net, addr))
        now = time.time()
        return [self.render(m, events[m["id"]], ips.get(m["id"], []), cat, now) for m in machines]

    def _one(self, mid):
        m = self.pool.get(mid)
        if m is None or m["id"] != mid:
            raise ApiError(404, 'NotFound no machine with id "%s" found' % mid)
        return m

    def _render_one(self, mid):
        return self._render_many([self._one(mid)])[0]

    # -- endpoints: health, version ----------------------------------------------------------

