#!/usr/bin/env bash
# Build the collection tarball and run `ansible-test sanity` on exactly what ships,
# unpacked under <tmp>/ansible_collections/baremetal/fleet (the layout ansible-test needs).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# ansible-test --requirements installs pinned linters (pylint, yamllint, ...): keep them out
# of the main .venv in a venv of their own, with the same ansible-core.
core="$(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("ansible-core"))')"
SV="$ROOT/.venv-sanity"
if [ ! -x "$SV/bin/ansible-test" ] || [ "$("$SV/bin/python" -c 'import importlib.metadata as m; print(m.version("ansible-core"))')" != "$core" ]; then
  python3 -m venv "$SV"
  "$SV/bin/pip" install -q "ansible-core==$core"
fi

# ansible-test bootstraps pip in its venvs with a script from its own download site, which
# this machine cannot reach; the ensurepip-based stand-in goes where it caches that script.
pipv="$("$SV/bin/python" - <<'PY'
import os, re, ansible_test
src = open(os.path.join(os.path.dirname(ansible_test.__file__), "_internal", "python_requirements.py")).read()
print(re.search(r"pip='([0-9.]+)'", src).group(1))
PY
)"
cache="$HOME/.ansible/test/cache"
mkdir -p "$cache"
cp "$ROOT/scripts/get_pip_offline.py" "$cache/get_pip_${pipv//./_}.py"

rm -rf build/dist && mkdir -p build/dist
.venv/bin/ansible-galaxy collection build --force --output-path build/dist . >/dev/null
tarball="$(ls build/dist/baremetal-fleet-*.tar.gz)"
echo "sanity: built $tarball"
# Outside the checkout: inside it, ansible-test would see our git repo and skip ignored paths.
work="$(mktemp -d "${TMPDIR:-/tmp}/fleet-sanity.XXXXXX")"
trap 'rm -rf "$work"' EXIT
dest="$work/ansible_collections/baremetal/fleet"
mkdir -p "$dest"
tar -xzf "$tarball" -C "$dest"
cd "$dest"
pyv="$("$SV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
"$SV/bin/ansible-test" sanity --local --requirements --python "$pyv" --color no "$@"
