"""The machine endpoints: list, get, find, allocate, free, reinstall, power, ipmi, state, update."""

import ipaddress
import time
import uuid


from ... import catalog as C
from ... import store as P
from ...util import rfc3339nano
from .wire import (
    FIND_LIST,
    FIND_STR,
    INT64,
    POWER_ACTIONS,
    ApiError,
    dedupe_tags,
    json_type,
    matches_find,
    valid_ssh_key,
)


class MachinesMixin:
    """Machine handlers of :class:`MetalFace`."""

    def h_health(self, request):
        return 200, {"status": "healthy", "message": "", "services": {}}

    def h_version(self, request):
        from ... import __version__
        return 200, {"name": "metal-api", "version": "v0.44.1 (fleetlab %s)" % __version__, "builddate": "",
                     "revision": "fleetlab", "gitsha1": "", "min_client_version": "v0.0.0",
                     "release_version": "v0.44.1"}

    # -- machines --------------------------------------------------------------------------

    def h_machine_list(self, request):
        return 200, self._render_many(self.pool.machines())

    def h_machine_get(self, request, id):
        return 200, self._render_one(id)

    def h_machine_find(self, request):
        body = self._body(request, "MachineFindRequest")
        query, rest = {}, {}
        for key, value in body.items():
            if value is None:
                continue
            if key in FIND_STR:
                if not isinstance(value, str):
                    raise ApiError(400, "json: cannot unmarshal %s into Go struct field MachineSearchQuery.%s of"
                                   " type string" % (json_type(value), key))
            elif key in FIND_LIST:
                if not isinstance(value, list):
                    raise ApiError(400, "json: cannot unmarshal %s into Go struct field MachineSearchQuery.%s of"
                                   " type []string" % (json_type(value), key))
                for item in value:
                    if not isinstance(item, str):
                        raise ApiError(400, "json: cannot unmarshal %s into Go struct field MachineSearchQuery.%s of"
                                       " type string" % (json_type(item), key))
            elif key == "hardware_memory":
                if not isinstance(value, int) or isinstance(value, bool) or not INT64[0] <= value <= INT64[1]:
                    raise ApiError(400, "json: cannot unmarshal %s into Go struct field MachineSearchQuery.%s of"
                                   " type int64" % (json_type(value), key))
            elif key == "allocation_succeeded":
                if not isinstance(value, bool):
                    raise ApiError(400, "json: cannot unmarshal %s into Go struct field MachineSearchQuery.%s of"
                                   " type bool" % (json_type(value), key))
            else:
                continue  # unknown keys are ignored, as Go's decoder does
            column = {"id": "id", "partition_id": "partition", "sizeid": "size", "rackid": "rack",
                      "state_value": "mstate", "allocation_name": "lease_name", "allocation_project": "project",
                      "allocation_hostname": "hostname", "hardware_memory": "memory"}.get(key)
            if column:
                query[column] = value
                if key.startswith("allocation_"):
                    query["leased"] = True
            elif key == "allocation_image_id":
                query.update(image=value, lease_face="metal")
            elif key == "nics_mac_addresses":
                if len(value) > 1:
                    query["nothing"] = True  # one NIC per lab machine
                elif value:
                    query["mac"] = str(value[0]).lower()
            elif key == "network_ips":
                query["with_ips"] = [str(ip) for ip in value]
            elif key == "allocation_role":
                query["leased" if value == "machine" else "nothing"] = True
            elif key == "allocation_succeeded":
                query["nothing" if value else "leased"] = True
            elif key == "name":
                if value != "":
                    query["nothing"] = True  # lab machines have no name
            else:
                rest[key] = value
        machines = self.pool.machines(**query)
        out = self._render_many(machines)
        if rest:
            out = [r for r in out if matches_find(r, rest)]
        return 200, out

    def h_machine_allocate(self, request):
        body = self._body(request, "MachineAllocateRequest")
        cat = self.catalog()
        networks = body.get("networks")
        if networks is None:
            raise ApiError(400, "network ids cannot be nil")
        if not networks:
            raise ApiError(400, "network ids cannot be empty")
        for n in networks:
            if not isinstance(n, dict) or not isinstance(n.get("networkid", ""), str):
                raise ApiError(400, "json: cannot unmarshal %s into Go struct field MachineAllocateRequest.networks"
                               " of type v1.MachineAllocationNetwork" % json_type(n))
        image = self._resolve_image(cat, body.get("imageid") or "")
        if image is None:
            raise ApiError(400, "NotFound no image for id:%s found" % (body.get("imageid") or ""))
        if "machine" not in image.get("features", []):
            raise ApiError(400, "given image is not usable for a machine, features: %s"
                           % ", ".join(image.get("features", [])))
        mid = body.get("uuid") or ""
        partition = body.get("partitionid") or ""
        size = body.get("sizeid") or ""
        if not mid and not partition:
            raise ApiError(400, "when no machine id is given, a partition id must be specified")
        if not mid and not size:
            raise ApiError(400, "when no machine id is given, a size id must be specified")
        target = None
        if mid:
            target = self.pool.get(mid)
            if target is None or target["id"] != mid:
                raise ApiError(400, 'uuid given but no machine found with uuid:%s err:NotFound no machine with id'
                               ' "%s" found' % (mid, mid))
            size, partition = target["size"], target["partition"]
        if size not in cat["sizes"]:
            raise ApiError(400, 'size:%s not found err:NotFound no size with id "%s" found' % (size, size))
        if partition not in cat["partitions"]:
            raise ApiError(400, 'partition:%s not found err:NotFound no partition with id "%s" found'
                           % (partition, partition))
        project = body.get("projectid") or ""
        if not project:
            raise ApiError(422, "project id must be specified")
        if project not in cat["projects"]:
            raise ApiError(404, "NotFound project with id %s not found" % project)
        for ip in body.get("ips") or []:
            try:
                ipaddress.ip_address(ip)
            except (ValueError, TypeError):
                raise ApiError(422, '"%s" is not a valid IP address' % (ip,))
        keys = body.get("ssh_pub_keys") or []
        for key in keys:
            if not valid_ssh_key(key):
                raise ApiError(422, "invalid public SSH key: %s error:ssh: no key found" % (key,))
        ids = [n.get("networkid") for n in networks]
        if len(set(ids)) != len(ids):
            raise ApiError(422, "given network ids are not unique")
        nets = []
        for n in networks:
            net = cat["networks"].get(n.get("networkid"))
            if net is None:
                raise ApiError(422, 'unable to gather networks:NotFound no network with id "%s" found'
                               % n.get("networkid"))
            if net.get("privatesuper"):
                raise ApiError(422, "unable to gather networks:private super networks are not allowed to be set"
                               " explicitly: %s" % net["id"])
            nets.append((net, n.get("autoacquire", True)))
        private = [net for net, _ in nets if net.get("projectid")]
        if not private:
            raise ApiError(422, "unable to gather networks:no private network given")
        if len(private) > 1:
            raise ApiError(422, "unable to gather networks:machines are not allowed to be placed into multiple"
                           " private networks")
        if private[0]["projectid"] != project:
            raise ApiError(422, "unable to gather networks:the given private network does not belong to the"
                           " project, which is not allowed")
        if any(not auto for _, auto in nets) and not body.get("ips"):
            raise ApiError(422, "missing ip(s) for network(s) without automatic ip allocation")
        user = {"view": "metal-view", "edit": "metal-edit", "admin": "metal-admin"}.get(request.environ.get("fleetlab.role"), "")
        lease = {
            "name": body.get("name") or "", "owner": project, "project": project,
            "hostname": body.get("hostname") if body.get("hostname") is not None else "metal",
            "image": image["id"], "description": body.get("description") or "",
            "ssh_pub_keys": keys, "user_data": body.get("user_data") or "",
            "tags": dedupe_tags(body.get("tags") or []),
            "networks": [{"networkid": net["id"], "autoacquire": bool(auto)} for net, auto in nets],
            "dns_servers": body.get("dns_servers") or [], "ntp_servers": body.get("ntp_servers") or [],
            "placement_tags": body.get("placement_tags") or [],
            "creator": "%s@metal-stack.io" % user if user else "bearer",
            "allocationuuid": str(uuid.uuid4()), "reinstall": False,
        }
        with self.pool.tx() as conn:
            if target is not None:
                cur = self.pool.get(target["id"], conn)
                if cur["lease_name"] is not None:
                    raise ApiError(422, "machine is already allocated")
                self.pool.lease(cur["id"], lease, "metal", conn=conn)
                machine_id = cur["id"]
            else:
                try:
                    machine_id = self.pool.allocate(partition, size, lease, "metal",
                                                    rack_spread_project=project, conn=conn)
                except P.PoolError as e:
                    raise ApiError(422, e.message)
            primary = None
            requested = list(body.get("ips") or [])
            for net, auto in nets:
                if requested:
                    for ip in list(requested):
                        if any(ipaddress.ip_address(ip) in ipaddress.ip_network(p) for p in net["prefixes"]):
                            if not self.pool.take_ip(conn, ip, net["id"], machine_id):
                                raise ApiError(422, 'given ip "%s" is not available for direct attachment to'
                                               ' machine because it is already in use' % ip)
                            requested.remove(ip)
                            if net.get("projectid") and primary is None:
                                primary = ip
                            break
                    else:
                        if not auto:
                            continue
                if auto and not self.pool.has_ip(conn, machine_id=machine_id, network_id=net["id"]):
                    try:
                        addr = self.pool.assign_ip(conn, machine_id, net["id"], net["prefixes"][0])
                    except P.PoolError as e:
                        raise ApiError(422, "unable to allocate an ip in network: %s %s" % (net["id"], e.message))
                    if net.get("projectid") and primary is None:
                        primary = addr
            if requested:
                raise ApiError(422, 'given ip "%s" is not in any of the given networks, which is required'
                               % requested[0])
            asn = C.ASN_BASE + int(self.pool.leased_count("metal", conn))
            self.pool.update_lease(machine_id, {"address": primary, "asn": asn}, conn=conn)
        m = self.pool.get(machine_id)
        self.driver.provision(m)
        return 200, self._render_many([m])[0]

    def h_machine_free(self, request, id):
        m = self._one(id)
        if m["mstate"] == "LOCKED":
            raise ApiError(422, "machine is locked")
        with self.pool.tx() as conn:
            m = self.pool.get(id, conn)
            if m["lease_name"] is not None:
                self.pool.release(id, conn=conn)
            # metal-api answers before the reclaim event is stored
            resp = self._render_many([self.pool.get(id, conn)])[0]
            self.pool.reclaim(id, conn=conn)
        self.driver.wipe(self.pool.get(id))
        return 200, resp

    def h_machine_reinstall(self, request, id):
        body = self._body(request, "MachineReinstallRequest")
        m = self._one(id)
        image = self._resolve_image(self.catalog(), body.get("imageid") or "")
        if m["lease_name"] is None or m["mstate"] == "LOCKED" or image is None or \
                "machine" not in image.get("features", []):
            raise ApiError(400, "machine either locked, not allocated yet or invalid image ID specified")
        m = self.pool.update_lease(id, {"image": image["id"], "reinstall": True})
        self.driver.reinstall(m)
        return 200, self._render_one(id)

    def h_machine_power(self, request, id, action):
        if action not in POWER_ACTIONS:
            raise ApiError(404, "404: Page Not Found")
        self._body(request, "EmptyBody", allow_empty=True)
        m = self._one(id)
        if action.startswith("chassis-identify-led-"):
            value = "LED-ON" if action.endswith("-on") else "LED-OFF"
            self.pool.set_columns(id, led=value, led_description=request.args.get("description", ""))
            return 200, self._render_one(id)
        if action in ("off", "reset", "cycle"):
            self.pool.add_event(id, P.EV_PLANNED_REBOOT, action.upper())
        # like a BMC: accepted, but a machine held off by a power-off fault stays off
        try:
            self.driver.switch_power(id, action)
        except ValueError as exc:  # the machine's hypervisor (its BMC) does not answer
            raise ApiError(503, "power %s: %s" % (action, exc))
        return 200, self._render_one(m["id"])

    def h_machine_ipmi(self, request, id):
        m = self._one(id)
        out = self._render_one(m["id"])
        out["ipmi"] = {
            "address": "", "bmcversion": "", "fru": {}, "interface": "lanplus", "mac": "", "user": "",
            "password": "", "last_updated": rfc3339nano(time.time()),
            "powerstate": "ON" if m["power"] == "on" else "OFF",
            "powermetric": {"averageconsumedwatts": 0, "intervalinmin": 0, "maxconsumedwatts": 0,
                            "minconsumedwatts": 0},
            "powersupplies": [],
        }
        return 200, out

    def h_machine_state(self, request, id):
        body = self._body(request, "MachineState")
        self._one(id)
        value = body.get("value") or ""
        if value == "TAINTED":
            value = "RESERVED"
        if value not in ("", "RESERVED", "LOCKED"):
            raise ApiError(400, 'unknown MachineState: "%s"' % value)
        if value and not body.get("description"):
            raise ApiError(400, "you must supply a description")
        user = {"view": "metal-view", "edit": "metal-edit", "admin": "metal-admin"}.get(request.environ.get("fleetlab.role"), "")
        self.pool.set_columns(id, mstate=value, mstate_description=body.get("description") or "",
                              mstate_issuer=("%s@metal-stack.io" % user) if value else "")
        return 200, self._render_one(id)

    def h_machine_update(self, request):
        body = self._body(request, "MachineUpdateRequest")
        mid = body.get("id") or ""
        m = self._one(mid)
        if m["lease_name"] is None:
            raise ApiError(400, "only allocated machines can be updated")
        changes = {}
        if body.get("description") is not None:
            changes["description"] = body["description"]
        if body.get("tags") is not None:
            changes["tags"] = dedupe_tags(body["tags"])
        if body.get("ssh_pub_keys") is not None:
            changes["ssh_pub_keys"] = body["ssh_pub_keys"]
        self.pool.update_lease(mid, changes)
        return 200, self._render_one(mid)

    # -- catalogue endpoints -------------------------------------------------------------------

