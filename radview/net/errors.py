"""NetError: every PACS failure the user can act on, naming the node and the reason."""
from __future__ import annotations


class NetError(Exception):
    """A PACS/DICOMweb operation failed. where: the node ('ORTHANC@127.0.0.1:4242' or a URL);
    reason: what went wrong in words (refused association, unknown AE, timeout, ...);
    kind: a short code the GUI and tests can branch on: 'refused' (no one listens),
    'timeout', 'unreachable' (unknown host, no route), 'rejected' (association rejected),
    'aborted' (peer went away), 'status' (a DIMSE/HTTP failure status), 'tls', 'config'."""

    def __init__(self, where: str, reason: str, kind: str = "error") -> None:
        super().__init__(f"{where}: {reason}")
        self.where = where
        self.reason = reason
        self.kind = kind
