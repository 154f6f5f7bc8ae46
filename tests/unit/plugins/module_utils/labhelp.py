"""Helpers for module_utils tests that talk to a running sim lab."""
import time
import uuid

from ansible_collections.baremetal.fleet.plugins.module_utils import connection

PROJECT = "00000000-0000-0000-0000-000000000001"
IMAGE = "debian-12"


def plunder(lab, **extra):
    params = {"provider": "plunder", "plunder_config": lab.plunder_config}
    params.update(extra)
    return connection.provider_from_params(params, environ={})


def metal(lab, key="edit", **extra):
    env = lab.metal_env
    params = {"provider": "metal", "api_url": env["METALCTL_API_URL"], "api_hmac": lab.hmac_keys[key],
              "api_hmac_auth_type": "Metal-%s" % key.capitalize()}
    params.update(extra)
    return connection.provider_from_params(params, environ={})


def provider(lab, name):
    return plunder(lab) if name == "plunder" else metal(lab)


def unique(prefix="t"):
    return "%s%s" % (prefix, uuid.uuid4().hex[:6])


def lease_params(provider_name, name, **kw):
    params = {"name": name, "hostname_template": "{name}-{index}", "project": PROJECT, "image": None}
    if provider_name == "plunder":
        params["address_range"] = kw.pop("address_range", "10.77.%d.1-10.77.%d.250" % ((hash(name) % 200) + 20,
                                                                                       (hash(name) % 200) + 20))
        params["image"] = "preseed"
    else:
        params["image"] = IMAGE
    params.update(kw)
    return params


def wait_for(predicate, timeout=20.0, interval=0.2):
    deadline = time.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.time() > deadline:
            return value
        time.sleep(interval)
