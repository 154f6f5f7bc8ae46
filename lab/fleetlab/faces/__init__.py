"""The lab's API faces: ``metal`` (metal-api v1) and ``plunder`` (plunder's API server)."""
