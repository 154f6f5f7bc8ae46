"""Shared pytest set-up: make ``ansible_collections.baremetal.fleet`` importable from the
checkout (a symlink under build/collections, as the test command also uses)."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(ROOT, "build", "collections")
link = os.path.join(COLLECTIONS, "ansible_collections", "baremetal", "fleet")
if not os.path.islink(link):
    os.makedirs(os.path.dirname(link), exist_ok=True)
    if os.path.lexists(link):
        os.remove(link)
    os.symlink(ROOT, link)
if COLLECTIONS not in sys.path:
    sys.path.insert(0, COLLECTIONS)
os.environ.setdefault("ANSIBLE_COLLECTIONS_PATH", COLLECTIONS)
