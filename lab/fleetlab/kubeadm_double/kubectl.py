"""A kubectl stand-in: ``apply -f``, ``diff -f``, ``get nodes``, ``get -f``, ``delete -f`` (TEST DOUBLE).

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
    delete.add_argument("-f", "--filename", required=True)
    delete.add_argument("--kubeconfig", dest="kubeconfig_sub")
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
