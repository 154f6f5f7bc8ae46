# -*- coding: utf-8 -*-
# Copyright: baremetal.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection settings shared by every module and the inventory plugin.

``connection_argument_spec()`` is the piece modules merge into their argument spec;
``provider_from_params(params)`` turns a dict of those options (module params, or a
plain dict from the inventory plugin) into a ready Provider. Options left unset fall
back to the environment variables metalctl and pldrctl users already have.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

from ansible_collections.baremetal.fleet.plugins.module_utils.pool import PoolError
from ansible_collections.baremetal.fleet.plugins.module_utils.transport import DEFAULT_RETRIES, DEFAULT_TIMEOUT

PROVIDERS = ("plunder", "metal")
HMAC_AUTH_TYPES = ("Metal-View", "Metal-Edit", "Metal-Admin")
DEFAULT_HMAC_AUTH_TYPE = "Metal-Edit"


class Option:
    """One connection option. The table below is the only declaration: the modules' argument
    spec, the environment fallbacks, the defaults and the inventory plugin's option keys come
    from it, and a unit test holds both doc fragments to it."""

    def __init__(self, name, type="str", default=None, choices=None, env=(), no_log=False, bounds=None):
        self.name = name
        self.type = type
        self.default = default
        self.choices = choices
        self.env = tuple(env)
        self.no_log = no_log
        self.bounds = bounds  # (lowest, highest) for an int

    def argument_spec(self):
        from ansible.module_utils.basic import env_fallback

        spec = dict(type=self.type)
        if self.default is not None:
            spec["default"] = self.default
        if self.choices:
            spec["choices"] = list(self.choices)
        if self.no_log:
            spec["no_log"] = True
        if self.env:
            spec["fallback"] = (env_fallback, list(self.env))
        return spec


CONNECTION_OPTIONS = (
    Option("provider", choices=PROVIDERS, env=("FLEET_PROVIDER",)),
    Option("plunder_config", type="path", env=("PLUNDER_CLIENT_CONFIG",)),
    Option("api_url", env=("METALCTL_API_URL",)),
    Option("api_hmac", env=("METALCTL_HMAC",), no_log=True),
    Option("api_hmac_auth_type", choices=HMAC_AUTH_TYPES, env=("METALCTL_HMAC_AUTH_TYPE",)),
    Option("api_token", env=("METALCTL_APITOKEN",), no_log=True),
    Option("validate_certs", type="bool", default=True),
    Option("api_timeout", type="int", default=DEFAULT_TIMEOUT, bounds=(1, 3600)),
    Option("api_retries", type="int", default=DEFAULT_RETRIES, bounds=(0, 20)),
)
OPTIONS = dict((o.name, o) for o in CONNECTION_OPTIONS)
OPTION_NAMES = tuple(o.name for o in CONNECTION_OPTIONS)
SECRET_OPTIONS = tuple(o.name for o in CONNECTION_OPTIONS if o.no_log)
ENV_FALLBACKS = dict((o.name, o.env) for o in CONNECTION_OPTIONS if o.env)


def connection_argument_spec():
    """The argument spec piece every module of the collection takes."""
    return dict((o.name, o.argument_spec()) for o in CONNECTION_OPTIONS)


def _value(params, key, environ):
    value = params.get(key)
    if value in (None, ""):
        for var in ENV_FALLBACKS.get(key, ()):
            if environ.get(var):
                return environ[var]
        return None
    return value


def _bounded(params, key, default, low, high):
    value = params.get(key)
    if value is None or value == "":
        return default
    try:
        value = int(value)
    except (TypeError, ValueError):
        raise PoolError("%s must be a whole number, got %r" % (key, value))
    if not low <= value <= high:
        raise PoolError("%s must be between %d and %d, got %d" % (key, low, high, value))
    return value


_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/@\s]+)@")


def url_secrets(url):
    """The ``user:password`` part of a URL (and the password alone), to be kept out of output."""
    match = _URL_USERINFO.search(url or "")
    if not match:
        return []
    userinfo = match.group("userinfo")
    return [userinfo] + ([userinfo.split(":", 1)[1]] if ":" in userinfo else [])


def redact(text, secrets=()):
    """``text`` without secret values and without ``user:password@`` in URLs."""
    text = _URL_USERINFO.sub(r"\g<scheme>***@", "%s" % (text,))
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "********")
    return text


def resolve_settings(params, environ=None):
    """Return a complete settings dict: given options, then env fallbacks, then defaults."""
    environ = os.environ if environ is None else environ
    params = dict(params or {})
    out = {}
    for key in ("provider", "plunder_config", "api_url", "api_hmac", "api_hmac_auth_type", "api_token"):
        out[key] = _value(params, key, environ)
    validate = params.get("validate_certs")
    if isinstance(validate, str):
        validate = validate.strip().lower() not in ("0", "false", "no", "off")
    out["validate_certs"] = OPTIONS["validate_certs"].default if validate is None else bool(validate)
    for key in ("api_timeout", "api_retries"):
        option = OPTIONS[key]
        out[key] = _bounded(params, key, option.default, *option.bounds)
    if out["api_hmac_auth_type"] is None:
        out["api_hmac_auth_type"] = DEFAULT_HMAC_AUTH_TYPE
    provider = out["provider"]
    if provider is None:
        has_plunder = bool(out["plunder_config"])
        has_metal = bool(out["api_url"])
        if has_plunder and not has_metal:
            provider = "plunder"
        elif has_metal and not has_plunder:
            provider = "metal"
        else:
            raise PoolError(
                "no provider chosen: set provider (plunder or metal) or FLEET_PROVIDER%s"
                % (" (both plunder_config and api_url are set)" if has_plunder else ""))
    if provider not in PROVIDERS:
        raise PoolError("unknown provider %r: expected one of %s" % (provider, ", ".join(PROVIDERS)))
    out["provider"] = provider
    if out["api_hmac_auth_type"] not in HMAC_AUTH_TYPES:
        raise PoolError("unknown api_hmac_auth_type %r: expected one of %s"
                        % (out["api_hmac_auth_type"], ", ".join(HMAC_AUTH_TYPES)))
    return out


def provider_from_params(params, environ=None):
    """Build the Provider for a dict of connection options (module params or plugin options)."""
    settings = resolve_settings(params, environ)
    if settings["provider"] == "plunder":
        from ansible_collections.baremetal.fleet.plugins.module_utils.plunder import PlunderProvider

        if not settings["plunder_config"]:
            raise PoolError("provider plunder needs plunder_config (or PLUNDER_CLIENT_CONFIG): "
                            "the path of a plunderclient.yaml")
        return PlunderProvider.from_config_file(
            settings["plunder_config"], validate_certs=settings["validate_certs"],
            timeout=settings["api_timeout"], retries=settings["api_retries"])
    from ansible_collections.baremetal.fleet.plugins.module_utils.metal import MetalProvider

    if not settings["api_url"]:
        raise PoolError("provider metal needs api_url (or METALCTL_API_URL), e.g. http://127.0.0.1:8080/metal")
    if not settings["api_hmac"] and not settings["api_token"]:
        raise PoolError("provider metal needs api_hmac (METALCTL_HMAC) or api_token (METALCTL_APITOKEN)")
    return MetalProvider(
        settings["api_url"], hmac_key=settings["api_hmac"], hmac_auth_type=settings["api_hmac_auth_type"],
        token=settings["api_token"], validate_certs=settings["validate_certs"],
        timeout=settings["api_timeout"], retries=settings["api_retries"])
