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

from ansible_collections.baremetal.fleet.plugins.module_utils.pool import PoolError

PROVIDERS = ("plunder", "metal")
HMAC_AUTH_TYPES = ("Metal-View", "Metal-Edit", "Metal-Admin")
DEFAULT_HMAC_AUTH_TYPE = "Metal-Edit"

# option -> environment variable(s), DESIGN §4
ENV_FALLBACKS = {
    "provider": ("FLEET_PROVIDER",),
    "plunder_config": ("PLUNDER_CLIENT_CONFIG",),
    "api_url": ("METALCTL_API_URL",),
    "api_hmac": ("METALCTL_HMAC",),
    "api_hmac_auth_type": ("METALCTL_HMAC_AUTH_TYPE",),
    "api_token": ("METALCTL_APITOKEN",),
}


def connection_argument_spec():
    """The argument spec piece every module of the collection takes."""
    from ansible.module_utils.basic import env_fallback

    return dict(
        provider=dict(type="str", choices=list(PROVIDERS),
                      fallback=(env_fallback, list(ENV_FALLBACKS["provider"]))),
        plunder_config=dict(type="path", fallback=(env_fallback, list(ENV_FALLBACKS["plunder_config"]))),
        api_url=dict(type="str", fallback=(env_fallback, list(ENV_FALLBACKS["api_url"]))),
        api_hmac=dict(type="str", no_log=True, fallback=(env_fallback, list(ENV_FALLBACKS["api_hmac"]))),
        api_hmac_auth_type=dict(type="str", choices=list(HMAC_AUTH_TYPES),
                                fallback=(env_fallback, list(ENV_FALLBACKS["api_hmac_auth_type"]))),
        api_token=dict(type="str", no_log=True, fallback=(env_fallback, list(ENV_FALLBACKS["api_token"]))),
        validate_certs=dict(type="bool", default=True),
        api_timeout=dict(type="int", default=30),
        api_retries=dict(type="int", default=4),
    )


def _value(params, key, environ):
    value = params.get(key)
    if value in (None, ""):
        for var in ENV_FALLBACKS.get(key, ()):
            if environ.get(var):
                return environ[var]
        return None
    return value


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
    out["validate_certs"] = True if validate is None else bool(validate)
    out["api_timeout"] = int(params.get("api_timeout") or 30)
    retries = params.get("api_retries")
    out["api_retries"] = 4 if retries is None else int(retries)
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


def connect(**options):
    """Keyword form of provider_from_params: ``connect(provider="metal", api_url=...)``."""
    return provider_from_params(options)
