"""The catalogue endpoints: sizes, images, partitions (capacity), projects, networks, filesystem layouts."""

import ipaddress
import time
import uuid


from ... import catalog as C
from ... import store as P
from ...util import parse_rfc3339
from .wire import ApiError


class CatalogueMixin:
    """Catalogue handlers of :class:`MetalFace`."""

    def _get(self, kind, id, render):
        entry = self.catalog()[kind].get(id)
        if entry is None:
            raise ApiError(404, 'NotFound no %s with id "%s" found' % (kind[:-1], id))
        return 200, render(entry)

    def h_size_list(self, request):
        return 200, [self._stamp(s) for s in self.catalog()["sizes"].values()]

    def h_size_get(self, request, id):
        return self._get("sizes", id, self._stamp)

    def h_image_list(self, request):
        return 200, [self._image_resp(i) for i in self.catalog()["images"].values()]

    def h_image_get(self, request, id):
        image = self._resolve_image(self.catalog(), id)
        if image is None:
            raise ApiError(404, "NotFound no image for id:%s found" % id)
        return 200, self._image_resp(image)

    def h_image_find(self, request):
        body = self._body(request, "FindByIdRequest")
        out = []
        for i in self.catalog()["images"].values():
            if body.get("id") is not None and i["id"] != body["id"]:
                continue
            if body.get("name") is not None and i["name"] != body["name"]:
                continue
            if body.get("classification") is not None and i["classification"] != body["classification"]:
                continue
            if body.get("features") and not set(body["features"]) <= set(i["features"]):
                continue
            out.append(self._image_resp(i))
        return 200, out

    def h_image_create(self, request):
        body = self._body(request, "ImageCreateRequest")
        iid = body.get("id") or ""
        if not iid or not body.get("url"):
            raise ApiError(400, "image id and url must be given")
        features = body.get("features") or ["machine"]
        if not set(features) <= {"machine", "firewall"}:
            raise ApiError(400, "image feature %s is not supported" % ",".join(features))
        expires = time.time() + 90 * 86400
        if body.get("expirationDate"):
            try:
                expires = parse_rfc3339(body["expirationDate"])
            except ValueError:
                raise ApiError(400, "parsing time %r: invalid expirationDate" % body["expirationDate"])
        with self.pool.tx() as conn:
            cat = self.catalog()
            if iid in cat["images"]:
                raise ApiError(409, "Conflict cannot create image in database, entity already exists: %s" % iid)
            entry = C._image(iid, features=features, classification=body.get("classification") or "preview",
                             expires=expires)
            entry.update({"name": body.get("name") or entry["name"], "url": body["url"],
                          "description": body.get("description") or "", "created": time.time(),
                          "changed": time.time()})
            cat["images"][iid] = entry
            self.pool.kv_set("metal.catalog", cat, conn)
        return 201, self._image_resp(entry)

    def h_size_create(self, request):
        body = self._body(request, "SizeCreateRequest")
        sid = body.get("id") or ""
        if not sid:
            raise ApiError(400, "size id must be given")
        with self.pool.tx() as conn:
            cat = self.catalog()
            if sid in cat["sizes"]:
                raise ApiError(409, "Conflict cannot create size in database, entity already exists: %s" % sid)
            entry = C._size(sid, created=time.time())
            entry.update({"name": body.get("name") or sid, "description": body.get("description") or "",
                          "labels": body.get("labels") or {}})
            if body.get("constraints"):
                entry["constraints"] = body["constraints"]
            cat["sizes"][sid] = entry
            self.pool.kv_set("metal.catalog", cat, conn)
        return 201, self._stamp(entry)

    def h_partition_list(self, request):
        return 200, [self._stamp(p) for p in self.catalog()["partitions"].values()]

    def h_partition_get(self, request, id):
        return self._get("partitions", id, self._stamp)

    def h_partition_capacity(self, request):
        body = self._body(request, "PartitionCapacityRequest")
        cat = self.catalog()
        rows = self.pool.capacity()
        parts = {}
        for part, size, state, leased, mstate, power, n in rows:
            if body.get("id") and part != body["id"]:
                continue
            if body.get("sizeid") and size != body["sizeid"]:
                continue
            s = parts.setdefault(part, {}).setdefault(size, {
                "size": size, "total": 0, "allocated": 0, "allocatable": 0, "free": 0, "faulty": 0,
                "faultymachines": [], "unavailable": 0, "waiting": 0, "phoned_home": 0, "other": 0,
                "othermachines": [], "reservations": 0, "usedreservations": 0, "remainingreservations": 0})
            s["total"] += n
            if leased:
                s["allocated"] += n
            if state == P.UNLEASED:
                s["waiting"] += n
            elif state == P.PROVISIONED:
                s["phoned_home"] += n
            else:
                s["other"] += n
            if state == P.UNLEASED and not leased and mstate == "" and power == "on":
                s["allocatable"] += n
                s["free"] += n
            elif not leased:
                s["unavailable"] += n
        out = []
        for part, sizes in sorted(parts.items()):
            p = cat["partitions"].get(part, {"id": part, "name": part, "description": ""})
            out.append({"id": part, "name": p.get("name", part), "description": p.get("description", ""),
                        "servers": [sizes[k] for k in sorted(sizes)]})
        return 200, out

    def h_project_list(self, request):
        return 200, [self._project_resp(p) for p in self.catalog()["projects"].values()]

    def h_project_get(self, request, id):
        p = self.catalog()["projects"].get(id)
        if p is None:
            raise ApiError(404, "NotFound project with id %s not found" % id)
        return 200, self._project_resp(p)

    def h_project_find(self, request):
        body = self._body(request, "FindByIdRequest")
        out = []
        for p in self.catalog()["projects"].values():
            if body.get("id") is not None and p["id"] != body["id"]:
                continue
            if body.get("name") is not None and p["name"] != body["name"]:
                continue
            if body.get("tenant_id") is not None and p["tenant_id"] != body["tenant_id"]:
                continue
            out.append(self._project_resp(p))
        return 200, out

    def h_project_create(self, request):
        body = self._body(request, "ProjectCreateRequest")
        if not body.get("tenant_id"):
            raise ApiError(400, "no tenant given")
        pid = ((body.get("meta") or {}).get("id")) or str(uuid.uuid4())
        with self.pool.tx() as conn:
            cat = self.catalog()
            if pid in cat["projects"]:
                raise ApiError(409, "Conflict project with id %s already exists" % pid)
            now = time.time()
            entry = {"id": pid, "name": body.get("name") or "", "description": body.get("description") or "",
                     "tenant_id": body["tenant_id"], "created": now, "updated": now, "labels": []}
            cat["projects"][pid] = entry
            self.pool.kv_set("metal.catalog", cat, conn)
        return 201, self._project_resp(entry)

    def h_network_list(self, request):
        return 200, [self._network_resp(n) for n in self.catalog()["networks"].values()]

    def h_network_get(self, request, id):
        return self._get("networks", id, self._network_resp)

    def h_network_find(self, request):
        body = self._body(request, "FindByIdRequest")
        out = []
        for n in self.catalog()["networks"].values():
            ok = True
            for key in ("id", "name", "partitionid", "projectid", "parentnetworkid", "nat", "privatesuper",
                        "underlay", "vrf"):
                if body.get(key) is not None and n.get(key, "" if key not in ("nat", "privatesuper", "underlay")
                                                         else False) != body[key]:
                    ok = False
            if body.get("prefixes") and not set(body["prefixes"]) <= set(n["prefixes"]):
                ok = False
            if ok:
                out.append(self._network_resp(n))
        return 200, out

    def h_network_allocate(self, request):
        """A private child network of the partition's private super network for a project (/22 by
        default, carved from the lab network)."""
        body = self._body(request, "NetworkAllocateRequest")
        project = body.get("projectid") or ""
        partition = body.get("partitionid") or ""
        if not project:
            raise ApiError(400, "projectid should not be empty")
        if not partition:
            raise ApiError(400, "partitionid should not be empty")
        cat = self.catalog()
        if project not in cat["projects"]:
            raise ApiError(404, "NotFound project with id %s not found" % project)
        if partition not in cat["partitions"]:
            raise ApiError(404, 'NotFound no partition with id "%s" found' % partition)
        length = (body.get("length") or {}).get("IPv4", 22)
        if not isinstance(length, int) or isinstance(length, bool):
            raise ApiError(400, "json: cannot unmarshal into Go struct field NetworkAllocateRequest.length")
        with self.pool.tx() as conn:
            cat = self.catalog()
            supers = [n for n in cat["networks"].values() if n.get("privatesuper")]
            if not supers:
                raise ApiError(400, "no supernetwork found")
            sup = supers[0]
            parent = ipaddress.ip_network(sup["prefixes"][0])
            if length <= parent.prefixlen or length > 30:
                raise ApiError(422, "given length %d is not valid for super network %s" % (length, parent))
            taken = [ipaddress.ip_network(p) for n in cat["networks"].values()
                     if n.get("parentnetworkid") == sup["id"] and n["id"] != C.PRIVATE_NETWORK
                     for p in n["prefixes"]]
            # skip the first child: the built-in user-private-network hands out its low addresses
            candidates = list(parent.subnets(new_prefix=length))[1:]
            free = next((c for c in candidates if not any(c.overlaps(t) for t in taken)), None)
            if free is None:
                raise ApiError(422, "no free prefix of length %d in %s" % (length, parent))
            nid = str(uuid.uuid4())
            vrf = 30 + len([n for n in cat["networks"].values() if n.get("parentnetworkid")])
            entry = {"id": nid, "name": body.get("name") or "", "description": body.get("description") or "",
                     "partitionid": partition, "projectid": project, "parentnetworkid": sup["id"],
                     "prefixes": [str(free)], "destinationprefixes": body.get("destinationprefixes") or [],
                     "nat": bool(body.get("nat")), "privatesuper": False, "underlay": False,
                     "shared": bool(body.get("shared")), "vrf": vrf, "labels": body.get("labels") or {}}
            cat["networks"][nid] = entry
            self.pool.kv_set("metal.catalog", cat, conn)
        return 201, self._network_resp(entry)

    def h_network_free(self, request, id):
        with self.pool.tx() as conn:
            cat = self.catalog()
            n = cat["networks"].get(id)
            if n is None:
                raise ApiError(404, 'NotFound no network with id "%s" found' % id)
            if not n.get("parentnetworkid") or id == C.PRIVATE_NETWORK:
                raise ApiError(422, "only allocated child networks can be freed")
            if self.pool.has_ip(conn, network_id=id):
                raise ApiError(422, "cannot release child prefix %s because IPs in the prefix are still in use"
                               % n["prefixes"][0])
            del cat["networks"][id]
            self.pool.kv_set("metal.catalog", cat, conn)
        return 200, self._network_resp(n)

    def h_fsl_list(self, request):
        return 200, []

