"""The plunder face: plunder's API server (HEAD, envelope with ``warning``) over the pool.

Wire behaviour follows plunder-app/plunder's ``pkg/apiserver`` and ``pkg/services``:
every reply is HTTP 200 with ``{"warning","error","success","payload"}`` (empty keys
omitted); clients discover paths with ``GET /api/{name}/{METHOD}``; MACs travel with
``-`` for ``:`` and IPs with ``-`` for ``.`` in URLs. Unknown paths get gorilla/mux's
plain-text 404, wrong methods 405.

Where the lab is stricter than plunder (it has one pool to protect): a deployment must
name a MAC of the pool and a valid IP address, MACs compare case-insensitively, and a
failed request changes nothing (plunder drops the MAC from its unleased list even when
``POST /deployment`` then fails).
"""

from .face import PlunderFace  # noqa: F401
