"""A kubectl stand-in: ``apply -f``, ``diff -f``, ``get nodes``, ``get -f``, ``delete -f``, ``delete node``,
``cordon``, ``uncordon``, ``drain`` (TEST DOUBLE; the double runs no pods, so a drain only cordons).

``diff`` exits 0 when the cluster already holds every object unchanged, 1 when
something would change and >1 on errors, as kubectl does.
"""
import argparse
import json
import os
import sys

import yaml

from . import KUBERNETES_VERSION
from .client import APIError, Client


def _objects(path):
    with open(path) as handle:
        docs = [doc for doc in yaml.safe_load_all(handle) if doc]
    objects = []
    for doc in docs:
        if doc.get("kind") == "List":
            objects.extend(doc.get("items") or [])
        else:
            objects.append(doc)
    return objects


def _cordon(client, args):
    from .schema import DURATION_RE
    if args.command == "drain" and not DURATION_RE.match(args.timeout):
        sys.stderr.write('error: invalid argument "%s" for "--timeout" flag: time: invalid duration "%s"\n'
                         % (args.timeout, args.timeout))
        return 1
    unschedulable = args.command != "uncordon"
    try:
        client.request("PATCH", "/api/v1/nodes/" + args.node, {"spec": {"unschedulable": unschedulable}})
    except APIError as exc:
        sys.stderr.write('Error from server (NotFound): nodes "%s" not found\n' % args.node if exc.status == 404
                         else "error: %s\n" % exc)
        return 1
    print("node/%s %s" % (args.node, "uncordoned" if not unschedulable else "cordoned"))
    if args.command == "drain":
        print("node/%s drained" % args.node)  # no pods run on the double's nodes: nothing to evict
    return 0


def _delete_nodes(client, args):
    if not args.kind or not args.names:
        sys.stderr.write("error: resource(s) were provided, but no name was specified\n")
        return 1
    code = 0
    for name in args.names:
        try:
            client.request("DELETE", "/api/v1/nodes/" + name)
            print('node "%s" deleted' % name)
        except APIError as exc:
            if exc.status == 404 and args.ignore_not_found:
                continue
            sys.stderr.write('Error from server (NotFound): nodes "%s" not found\n' % name if exc.status == 404
                             else "error: %s\n" % exc)
            code = 1
    return code


def main(argv, root):
    parser = argparse.ArgumentParser(prog="kubectl (test double)")
    parser.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG",
                                                                os.path.expanduser("~/.kube/config")))
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("apply", "diff"):
        cmd = sub.add_parser(name)
        cmd.add_argument("-f", "--filename", required=True)
        cmd.add_argument("--kubeconfig", dest="kubeconfig_sub")
    delete = sub.add_parser("delete")
    delete.add_argument("kind", nargs="?", choices=["node", "nodes", "no"])
    delete.add_argument("names", nargs="*")
    delete.add_argument("-f", "--filename")
    delete.add_argument("--ignore-not-found", action="store_true")
    delete.add_argument("--wait", default="true", choices=["true", "false"])
    delete.add_argument("--kubeconfig", dest="kubeconfig_sub")
    for name in ("cordon", "uncordon", "drain"):
        cmd = sub.add_parser(name)
        cmd.add_argument("node")
        cmd.add_argument("--kubeconfig", dest="kubeconfig_sub")
        if name == "drain":
            cmd.add_argument("--ignore-daemonsets", action="store_true")
            cmd.add_argument("--delete-emptydir-data", action="store_true")
            cmd.add_argument("--disable-eviction", action="store_true")
            cmd.add_argument("--force", action="store_true")
            cmd.add_argument("--timeout", default="0s")
            cmd.add_argument("--grace-period", type=int, default=-1)
    get = sub.add_parser("get")
    get.add_argument("resource", nargs="?", choices=["nodes", "node", "no"])
    get.add_argument("-f", "--filename")
    get.add_argument("-o", "--output", default="")
    get.add_argument("--kubeconfig", dest="kubeconfig_sub")
    version = sub.add_parser("version")
    version.add_argument("--client", action="store_true")
    version.add_argument("-o", "--output", default="")
    args = parser.parse_args(argv)
    if args.command == "version":
        print("Client Version: %s (fleetlab kubectl TEST DOUBLE)" % KUBERNETES_VERSION)
        return 0
    kubeconfig = getattr(args, "kubeconfig_sub", None) or args.kubeconfig
    try:
        client = Client.from_kubeconfig(kubeconfig)
        if args.command in ("apply", "diff"):
            objects = _objects(args.filename)
            result = client.request("POST", "/fleet-double/v1/%s" % args.command, {"objects": objects})
            if args.command == "apply":
                for item in result["results"]:
                    print("%s/%s %s" % (item["kind"].lower(), item["name"], item["result"]))
                return 0
            changed = [i for i in result["results"] if i["result"] != "unchanged"]
            for item in changed:
                print("diff: %s %s/%s would be %s" % (item["key"], item["kind"].lower(), item["name"],
                                                      item["result"]))
            return 1 if changed else 0
        if args.command in ("cordon", "uncordon", "drain"):
            return _cordon(client, args)
        if args.command == "delete" and not args.filename:
            return _delete_nodes(client, args)
        if args.command == "delete" or (args.command == "get" and args.filename):
            verb = "delete" if args.command == "delete" else "get"
            try:
                result = client.request("POST", "/fleet-double/v1/" + verb, {"objects": _objects(args.filename)})
            except APIError as exc:
                sys.stderr.write("Error from server (%s): %s\n" % ("NotFound" if exc.status == 404 else exc.status,
                                                                    exc))
                return 1
            for item in result["results"]:
                if verb == "delete":
                    print('%s "%s" deleted' % (item["kind"].lower(), item["name"]))
                elif args.output == "json":
                    print(json.dumps(item["manifest"], indent=2))
                else:
                    print("%s/%s" % (item["kind"].lower(), item["name"]))
            return 0
        if args.command == "get" and not args.resource:
            sys.stderr.write("error: You must specify the type of resource to get\n")
            return 1
        nodes = client.request("GET", "/api/v1/nodes")
        if args.output == "json":
            print(json.dumps(nodes, indent=2))
        elif args.output == "name":
            for item in nodes["items"]:
                print("node/" + item["metadata"]["name"])
        else:
            print("NAME STATUS VERSION")
            for item in nodes["items"]:
                ready = [c for c in item["status"]["conditions"] if c["type"] == "Ready"][0]
                print("%s %s %s" % (item["metadata"]["name"], "Ready" if ready["status"] == "True" else
                                    "NotReady", item["status"]["nodeInfo"]["kubeletVersion"]))
        return 0
    except (APIError, OSError, ValueError, KeyError) as exc:
        sys.stderr.write("error: %s\n" % exc)
        return 2 if args.command == "diff" else 1
