"""The metal-api face (package): metal-stack's v1 REST API (the part an allocation needs) over the pool.

Behaviour follows metal-api (go-restful, ``cmd/metal-api``), metal-lib and metal-stack/security:

* HMAC: ``Authorization: Metal-View|Metal-Edit|Metal-Admin <hex>`` with
  ``hex = HMAC-SHA256(key, X-Date + METHOD + X-Data-Salt)``; the date must be RFC3339 and
  not older than the lifetime (30 s view/edit, 90 s admin; future dates pass). A wrong
  HMAC or date gives 403 ``{"statuscode":403,"message":...}``; no (or an unknown)
  Authorization makes the caller a guest, refused with 403 and a bare JSON string
  (``"tenant  not allowed"``) except on ``/health``, ``/version``, ``/liveliness``.
  Optional bearer tokens (``--metal-token ROLE=TOKEN``) stand in for OIDC.
* Roles: view < edit < admin; a missing role gives 403 ``you are not member in one of [...]``.
* Errors: ``{"statuscode": N, "message": "..."}``; request decoding -> 400, not found -> 404
  (``NotFound no machine with id "x" found``), creating an existing entity -> 409, other
  failures -> 422; unknown route 404, wrong method 405, POST/PUT without
  ``Content-Type: application/json`` 415 (go-restful's texts).
* Machine responses carry every field metal-python 0.45.0 requires; the event log is newest
  first (at most 20), timestamps are the server's.
"""

from .face import MetalFace  # noqa: F401
from .wire import AUTH_TYPES, ApiError  # noqa: F401
