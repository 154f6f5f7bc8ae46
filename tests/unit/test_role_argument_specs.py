"""Every role's meta/argument_specs.yml documents exactly the variables its defaults/main.yml sets,
with the same default where the default is a plain value (not a template)."""
import os

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROLES = sorted(r for r in os.listdir(os.path.join(ROOT, "roles"))
               if os.path.isdir(os.path.join(ROOT, "roles", r, "meta")))


def _load(role, *parts):
    path = os.path.join(ROOT, "roles", role, *parts)
    if not os.path.exists(path):
        return None
    with open(path) as fh:
        return yaml.safe_load(fh)


@pytest.mark.parametrize("role", ROLES)
def test_argument_spec_matches_defaults(role):
    defaults = _load(role, "defaults", "main.yml") or {}
    specs = _load(role, "meta", "argument_specs.yml")
    assert specs and "main" in specs["argument_specs"], "%s has no argument spec" % role
    options = specs["argument_specs"]["main"].get("options") or {}
    assert set(defaults) <= set(options), "%s: defaults not in the argument spec: %s" % (
        role, sorted(set(defaults) - set(options)))
    for name, spec in options.items():
        assert spec.get("description"), "%s: %s has no description" % (role, name)
        if name not in defaults:
            assert spec.get("required") or "default" not in spec, \
                "%s: %s has a documented default but none in defaults/main.yml" % (role, name)
            continue
        value = defaults[name]
        if isinstance(value, str) and "{{" in value:
            continue  # a template: its value depends on the play
        if "default" in spec:
            assert spec["default"] == value, "%s: %s default %r in the spec, %r in defaults" % (
                role, name, spec["default"], value)
