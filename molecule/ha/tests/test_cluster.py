"""The node checks every scenario runs (molecule/default/tests/test_cluster.py), on the three
control planes of the HA cluster."""
import importlib.util
import os

_SPEC = importlib.util.spec_from_file_location(
    "fleet_cluster_checks", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "default", "tests",
                                         "test_cluster.py"))
_CHECKS = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(_CHECKS)
globals().update({name: value for name, value in vars(_CHECKS).items() if name.startswith("test_")})
