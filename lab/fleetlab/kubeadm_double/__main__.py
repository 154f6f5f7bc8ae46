"""Entry point: ``python -m fleetlab.kubeadm_double {kubeadm|kubelet|kube-apiserver|build-debs} ...``.

The packaged wrappers (/usr/bin/kubeadm etc. on lab images) call this with their own name.
``--root DIR`` (or ``FLEET_KUBEADM_ROOT``) makes every path relative to DIR.
"""
import os
import sys


def _split_root(argv):
    root = os.environ.get("FLEET_KUBEADM_ROOT", "/")
    rest = []
    skip = False
    for index, arg in enumerate(argv):
        if skip:
            skip = False
            continue
        if arg == "--root":
            root = argv[index + 1]
            skip = True
        elif arg.startswith("--root="):
            root = arg[len("--root="):]
        else:
            rest.append(arg)
    return os.path.abspath(root), rest


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        sys.stderr.write(__doc__)
        return 2
    tool, rest = os.path.basename(argv[0]), argv[1:]
    root, rest = _split_root(rest)
    if tool == "kubeadm":
        from .kubeadm import main as run
    elif tool == "kubelet":
        from .kubelet import main as run
    elif tool == "kube-apiserver":
        from .apiserver import main as run
    elif tool == "build-debs":
        from .debs import main as run
    else:
        sys.stderr.write("unknown tool %r\n%s" % (tool, __doc__))
        return 2
    return run(rest, root)


if __name__ == "__main__":
    sys.exit(main())
