"""The connection options table is the one declaration: the argument spec, the environment
fallbacks, the inventory plugin's keys and both doc fragments agree with it."""
import re

import pytest
import yaml

from ansible_collections.baremetal.fleet.plugins.doc_fragments.connection import ModuleDocFragment
from ansible_collections.baremetal.fleet.plugins.inventory import pool as inventory
from ansible_collections.baremetal.fleet.plugins.module_utils import connection
from ansible_collections.baremetal.fleet.plugins.module_utils.pool import PoolError

TABLE = connection.OPTIONS


def _doc(text):
    return yaml.safe_load(text)["options"]


@pytest.mark.parametrize("fragment", ["DOCUMENTATION", "PLUGIN"])
def test_doc_fragment_matches_the_table(fragment):
    docs = _doc(getattr(ModuleDocFragment, fragment))
    assert set(docs) == set(TABLE), "options in the fragment and the table differ"
    for name, doc in docs.items():
        opt = TABLE[name]
        assert doc["type"] == opt.type, name
        assert doc.get("default") == opt.default, name
        assert doc.get("choices") == (list(opt.choices) if opt.choices else None), name
        text = " ".join(doc["description"]) if isinstance(doc["description"], list) else doc["description"]
        if fragment == "PLUGIN":
            assert [e["name"] for e in doc.get("env", [])] == list(opt.env), name
        else:
            assert set(re.findall(r"E\(([A-Z_]+)\)", text)) == set(opt.env), name
        if opt.bounds:
            assert "%d" % opt.bounds[1] in text, "%s: its bounds are not documented" % name


def test_argument_spec_and_fallbacks_come_from_the_table():
    spec = connection.connection_argument_spec()
    assert list(spec) == list(connection.OPTION_NAMES)
    for name, entry in spec.items():
        opt = TABLE[name]
        assert entry["type"] == opt.type and entry.get("default") == opt.default
        assert entry.get("no_log", False) == opt.no_log
        assert list(entry.get("fallback", (None, []))[1]) == list(opt.env)
    assert connection.ENV_FALLBACKS == dict((n, o.env) for n, o in TABLE.items() if o.env)
    assert inventory.CONNECTION_OPTIONS == connection.OPTION_NAMES
    assert set(inventory.SECRET_OPTIONS) == {"api_hmac", "api_token"}


def test_defaults_come_from_the_table():
    settings = connection.resolve_settings({"provider": "metal"}, environ={})
    for name in ("validate_certs", "api_timeout", "api_retries"):
        assert settings[name] == TABLE[name].default


@pytest.mark.parametrize("key,value,message", [
    ("api_timeout", -1, "api_timeout must be between 1 and 3600, got -1"),
    ("api_timeout", 0, "api_timeout must be between 1 and 3600, got 0"),
    ("api_retries", 99, "api_retries must be between 0 and 20, got 99"),
    ("api_timeout", "soon", "api_timeout must be a whole number"),
])
def test_out_of_range_values_are_clear_errors(key, value, message):
    with pytest.raises(PoolError, match=re.escape(message)):
        connection.resolve_settings({"provider": "metal", key: value}, environ={})


def test_url_userinfo_is_redacted():
    url = "https://admin:s3cret-pass@metal.example/metal"
    assert connection.url_secrets(url) == ["admin:s3cret-pass", "s3cret-pass"]
    assert connection.redact("cannot reach %s/v1/machine" % url) == "cannot reach https://***@metal.example/metal/v1/machine"
    assert connection.url_secrets("https://metal.example/metal") == []
