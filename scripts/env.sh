# Sourced by the project's scripts after scripts/setup.sh: the venv's tools first on PATH, and the
# collection found from the checkout (build/collections, made by setup.sh) beside the collections
# the `ansible` package bundles.
export PATH="$ROOT/.venv/bin:$PATH"
ANSIBLE_COLLECTIONS_PATH="$ROOT/build/collections:$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
export ANSIBLE_COLLECTIONS_PATH
