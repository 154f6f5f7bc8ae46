# -*- coding: utf-8 -*-
# Copyright: baremetal.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every module of the collection does around its one call: build the argument
spec, connect, turn PoolError into fail_json with the machine and the server's text."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.baremetal.fleet.plugins.module_utils.connection import (
    connection_argument_spec,
    provider_from_params,
    redact,
    url_secrets,
)
from ansible_collections.baremetal.fleet.plugins.module_utils.pool import PoolError


def wait_argument_spec():
    """The argument spec piece of the ``wait`` doc fragment."""
    return dict(wait_timeout=dict(type="int", default=1800), poll_interval=dict(type="float", default=10))


def selector_argument_spec():
    """The argument spec piece of the ``selectors`` doc fragment (machine attributes, hardware map)."""
    return dict(size=dict(type="str"), partition=dict(type="str"), vendor=dict(type="str"), rack=dict(type="str"),
                labels=dict(type="dict"), hardware=dict(type="dict"))


def lease_target_argument_spec():
    """The argument spec piece of the ``lease_target`` doc fragment (a lease and/or machines)."""
    return dict(name=dict(type="str"), machines=dict(type="list", elements="str"),
                hostname_template=dict(type="str", default="{name}-{index}"), project=dict(type="str"))


def fleet_module(argument_spec, **kwargs):
    spec = connection_argument_spec()
    spec.update(argument_spec)
    kwargs.setdefault("supports_check_mode", True)
    return AnsibleModule(argument_spec=spec, **kwargs)


def run(module, action):
    """``action(provider)`` returns the result dict; failures become fail_json. A password in
    ``api_url`` (``https://user:password@host``) is masked everywhere, the echoed arguments too."""
    secrets = url_secrets(module.params.get("api_url"))
    for secret in secrets:
        module.no_log_values.add(secret)
    try:
        provider = provider_from_params(module.params)
        result = action(provider)
    except PoolError as err:
        kwargs = err.to_fail_kwargs()
        module.fail_json(**dict((k, redact(v, secrets) if isinstance(v, str) else v) for k, v in kwargs.items()))
    for warning in result.pop("warnings", None) or []:
        module.warn(warning)
    if not module._diff:
        result.pop("diff", None)
    return result
