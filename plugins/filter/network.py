# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Address filters the roles need without an extra collection."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress

from ansible.errors import AnsibleFilterError


def _interface(value):
    try:
        return ipaddress.ip_interface(u"%s" % value)
    except ValueError as exc:
        raise AnsibleFilterError("not an address with a prefix or netmask: %s (%s)" % (value, exc))


def ip_in_network(address, interface):
    """True when ``address`` lies in the network of ``interface`` (``addr/prefix`` or ``addr/netmask``)
    and is neither that network's address nor its broadcast address."""
    try:
        ip = ipaddress.ip_address(u"%s" % address)
    except ValueError as exc:
        raise AnsibleFilterError("not an IP address: %s (%s)" % (address, exc))
    network = _interface(interface).network
    return ip in network and (network.prefixlen >= network.max_prefixlen - 1
                              or ip not in (network.network_address, network.broadcast_address))


def ip_prefix(interface):
    """The prefix length of ``addr/netmask`` (or ``addr/prefix``)."""
    return _interface(interface).network.prefixlen


class FilterModule(object):
    def filters(self):
        return {"ip_in_network": ip_in_network, "ip_prefix": ip_prefix}
