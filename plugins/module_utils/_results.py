# -*- coding: utf-8 -*-
# Copyright: baremetal.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What leasing and provisioning share: the result entry of a machine, the lease's state for
``--diff``, and running calls on a few threads. Internal to the collection's module_utils."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import threading


def machine_result(machine, changed=False, planned=False, surplus=False):
    out = machine.to_dict()
    out["name"] = machine.lease_name
    out["changed"] = changed
    if planned:
        out["planned"] = True
    if surplus:
        out["surplus"] = True
    return out


def lease_state(machines):
    return dict((m.lease_name, {"mac": m.mac, "id": m.id, "address": m.address, "hostname": m.hostname})
                for m in machines if m.lease_name)


def run_parallel(func, items, workers):
    """Run func(item) on a few threads; stop starting new items after the first error.
    Returns (results in item order (None where not run), first error or None)."""
    results = [None] * len(items)
    errors = []
    lock = threading.Lock()
    queue = list(enumerate(items))

    def worker():
        while True:
            with lock:
                if errors or not queue:
                    return
                index, item = queue.pop(0)
            try:
                results[index] = func(item)
            except Exception as err:  # pylint: disable=broad-except
                with lock:
                    errors.append((index, err))
                return

    threads = [threading.Thread(target=worker) for _i in range(max(1, min(workers, len(items))))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, (errors[0] if errors else None)
