"""The address filters the control_plane_vip role checks a VIP with."""
import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.baremetal.fleet.plugins.filter.network import ip_in_network, ip_prefix


@pytest.mark.parametrize("address, interface, expected", [
    ("10.77.9.250", "10.77.9.11/255.255.0.0", True),
    ("10.78.0.1", "10.77.9.11/255.255.0.0", False),      # another network
    ("10.77.0.0", "10.77.9.11/16", False),               # the network's own address
    ("10.77.255.255", "10.77.9.11/16", False),           # its broadcast address
    ("192.168.1.9", "192.168.1.20/24", True),
    ("fd00::9", "fd00::1/64", True),
    ("10.0.0.1", "10.0.0.0/31", True),                   # point-to-point: both addresses usable
])
def test_ip_in_network(address, interface, expected):
    assert ip_in_network(address, interface) is expected


def test_bad_input_is_an_error():
    with pytest.raises(AnsibleFilterError, match="not an IP address"):
        ip_in_network("10.77.9.300", "10.77.9.11/16")
    with pytest.raises(AnsibleFilterError, match="prefix or netmask"):
        ip_prefix("10.77.9.11/40")


def test_ip_prefix():
    assert ip_prefix("10.77.9.11/255.255.0.0") == 16
    assert ip_prefix("fd00::1/64") == 64
