"""The Provider contract is the whole interface: every backend implements all of it with the
contract's signatures, the neutral layer calls nothing outside it and never names a backend."""
import inspect
import os
import re

import pytest

from ansible_collections.baremetal.fleet.plugins.module_utils import pool
from ansible_collections.baremetal.fleet.plugins.module_utils.metal import MetalProvider
from ansible_collections.baremetal.fleet.plugins.module_utils.plunder import PlunderProvider

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
NEUTRAL = ["plugins/module_utils/leasing.py", "plugins/module_utils/provisioning.py",
           "plugins/modules/lease.py", "plugins/modules/provision.py", "plugins/modules/wipe.py",
           "plugins/modules/machine_info.py", "plugins/inventory/pool.py"]
BACKENDS = [PlunderProvider, MetalProvider]


def _contract():
    return dict((name, member) for name, member in inspect.getmembers(pool.Provider, inspect.isfunction)
                if not name.startswith("_"))


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.__name__)
def test_backend_implements_the_whole_contract(backend):
    assert issubclass(backend, pool.Provider)
    assert not inspect.isabstract(backend), sorted(backend.__abstractmethods__)
    assert backend.name
    for name, method in _contract().items():
        impl = getattr(backend, name)
        want = [p for p in inspect.signature(method).parameters.values()]
        have = inspect.signature(impl).parameters
        for param in want:
            assert param.name in have, "%s.%s lacks parameter %s" % (backend.__name__, name, param.name)
            if param.default is not inspect.Parameter.empty:
                assert have[param.name].default is not inspect.Parameter.empty, \
                    "%s.%s: %s must stay optional" % (backend.__name__, name, param.name)


def test_abstract_methods_are_documented():
    for name, method in _contract().items():
        assert (method.__doc__ or "").strip(), "Provider.%s has no docstring" % name


def _source(rel, strings=False):
    with open(os.path.join(ROOT, rel)) as fh:
        text = fh.read()
    # code only: no docstrings and comments (and no string literals unless asked for)
    text = re.sub(r'"""(.|\n)*?"""', "", text)
    text = re.sub(r"#.*", "", text)
    return text if strings else re.sub(r"(\"[^\"\n]*\"|'[^'\n]*')", "''", text)


@pytest.mark.parametrize("rel", NEUTRAL)
def test_neutral_code_calls_only_the_contract(rel):
    contract = set(_contract()) | {"name", "needs_addresses", "hostname_is_member"}
    calls = set(re.findall(r"\bprovider\.(\w+)", _source(rel)))
    assert calls <= contract, "%s calls %s outside the Provider contract" % (rel, sorted(calls - contract))


@pytest.mark.parametrize("rel", NEUTRAL)
def test_neutral_code_never_branches_on_a_backend(rel):
    code = _source(rel)
    assert not re.search(r"\b(plunder|metal)\b", code, re.IGNORECASE), rel
    assert "hasattr(provider" not in code
    # no comparison with a backend's name either
    assert not re.search(r"(==|!=|\bin)\s*[(\[]?\s*[\"'](plunder|metal)[\"']", _source(rel, strings=True)), rel
