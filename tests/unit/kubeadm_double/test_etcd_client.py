"""The double's etcd client: when a member counts as ready."""
from fleetlab.kubeadm_double import etcd


class _Member(etcd.Etcd):
    """An Etcd client whose HTTP exchange is replaced by canned answers per path."""

    def __init__(self, answers):  # pylint: disable=super-init-not-called
        self.endpoints = ["https://127.0.0.1:2379"]
        self.answers = answers

    def _post(self, endpoint, path, body):
        answer = self.answers[path]
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_member_is_not_ready_while_its_gateway_cannot_reach_it():
    # etcd 3.4 right after start: /health is served by the member, the JSON API by a gRPC
    # gateway that dialled too early and still answers 503
    refused = etcd.EtcdError('/v3/maintenance/status: 503 connection error: desc = "transport: '
                             'Error while dialing dial tcp 127.0.0.1:2379: connect: connection refused"')
    member = _Member({"/health": {"health": "true"}, "/v3/maintenance/status": refused})
    assert not member.healthy()
    member.answers["/v3/maintenance/status"] = {"header": {"revision": "1"}, "version": "3.4.23"}
    assert member.healthy()


def test_member_without_quorum_is_not_ready():
    member = _Member({"/health": {"health": "false"}, "/v3/maintenance/status": {"header": {}}})
    assert not member.healthy()
