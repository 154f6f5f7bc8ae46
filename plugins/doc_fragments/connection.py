# -*- coding: utf-8 -*-
# Copyright: baremetal.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    """Connection settings of the pool backends (plunder, metal-api)."""

    # Modules: every option falls back to the environment variable named in its description.
    DOCUMENTATION = r"""
options:
  provider:
    description:
      - The provisioning backend that holds the machine pool.
      - If not set, the environment variable E(FLEET_PROVIDER) is used; without it the backend is
        inferred when only one of O(plunder_config) and O(api_url) is set.
    type: str
    choices: [plunder, metal]
  plunder_config:
    description:
      - Path of a C(plunderclient.yaml) as written by C(plunder config apiserver client)
        (server C(address), C(port) and the base64 C(cert) that is trusted for TLS).
      - If not set, the environment variable E(PLUNDER_CLIENT_CONFIG) is used.
    type: path
  api_url:
    description:
      - Base URL of metal-api including its base path, for example C(http://127.0.0.1:8080/metal).
      - If not set, the environment variable E(METALCTL_API_URL) is used.
    type: str
  api_hmac:
    description:
      - HMAC key for metal-api.
      - If not set, the environment variable E(METALCTL_HMAC) is used.
    type: str
  api_hmac_auth_type:
    description:
      - HMAC auth type (the user the key belongs to).
      - If not set, the environment variable E(METALCTL_HMAC_AUTH_TYPE) is used, else V(Metal-Edit).
    type: str
    choices: [Metal-View, Metal-Edit, Metal-Admin]
  api_token:
    description:
      - Bearer token for metal-api, used instead of O(api_hmac).
      - If not set, the environment variable E(METALCTL_APITOKEN) is used.
    type: str
  validate_certs:
    description:
      - Verify TLS certificates. For plunder the certificate from O(plunder_config) is the trust anchor.
      - Turning this off is only for throw-away labs.
    type: bool
    default: true
  api_timeout:
    description:
      - Seconds to wait for one HTTP reply, between 1 and 3600.
      - A call with all its retries ends within twice this time, so a server that stops answering
        holds a task for at most 60 seconds by default.
    type: int
    default: 30
  api_retries:
    description:
      - How often a request is repeated, with exponential backoff, after a transient fault
        (connection refused, HTTP 5xx, timeout), between 0 and 20, within the bound of O(api_timeout).
        Writes that may or may not have happened are only repeated after the server state has been
        read again.
    type: int
    default: 4
"""

    # Plugins (inventory): the same settings, also read from the environment.
    PLUGIN = r"""
options:
  provider:
    description: The provisioning backend that holds the machine pool.
    type: str
    choices: [plunder, metal]
    env:
      - name: FLEET_PROVIDER
  plunder_config:
    description: Path of a C(plunderclient.yaml) (server address, port and the base64 cert trusted for TLS).
    type: path
    env:
      - name: PLUNDER_CLIENT_CONFIG
  api_url:
    description: Base URL of metal-api including its base path, for example C(http://127.0.0.1:8080/metal).
    type: str
    env:
      - name: METALCTL_API_URL
  api_hmac:
    description: HMAC key for metal-api.
    type: str
    env:
      - name: METALCTL_HMAC
  api_hmac_auth_type:
    description: HMAC auth type (the user the key belongs to); V(Metal-Edit) when neither set nor in the environment.
    type: str
    choices: [Metal-View, Metal-Edit, Metal-Admin]
    env:
      - name: METALCTL_HMAC_AUTH_TYPE
  api_token:
    description: Bearer token for metal-api, used instead of O(api_hmac).
    type: str
    env:
      - name: METALCTL_APITOKEN
  validate_certs:
    description: Verify TLS certificates. For plunder the certificate from O(plunder_config) is the trust anchor.
    type: bool
    default: true
  api_timeout:
    description: Seconds to wait for one HTTP reply (1 to 3600); a call with its retries ends within twice this.
    type: int
    default: 30
  api_retries:
    description: How often a request is repeated, with exponential backoff, after a transient fault (0 to 20).
    type: int
    default: 4
"""
