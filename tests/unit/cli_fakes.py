"""A stand-in for gaia_common.client.MasterClient, so CLI tests need no master.

It answers each method from `responses` (a message, or an exception to raise) and records
every call, so a test can also assert that nothing was sent.
"""
import pytest

from gaia_common import config


class FakeMaster:
    def __init__(self):
        self.responses = {}
        self.calls = []            # (method, request)
        self.clients = []          # cluster names a client was made for
        self.masters = []          # what MasterClient.masters() returns

    def client_class(self):
        fake = self

        class FakeMasterClient:
            def __init__(self, cluster):
                self.cluster = cluster

            @classmethod
            def for_cluster(cls, name, **kwargs):
                config.cluster_entry(name)  # unknown names fail as the real one does
                fake.clients.append(name)
                return cls(name)

            def call(self, method, request, timeout=None):
                fake.calls.append((method, request))
                answer = fake.responses[method]
                if isinstance(answer, Exception):
                    raise answer
                return answer

            def masters(self):
                return list(fake.masters)

            def close(self):
                pass

        return FakeMasterClient


@pytest.fixture
def fake_master(client_config, monkeypatch):
    """A client config with cluster `c1` (current) whose client is a FakeMaster."""
    config.save_client_config({"current": "c1", "clusters": {"c1": {"etcd": ["http://127.0.0.1:1"]}}})
    fake = FakeMaster()
    monkeypatch.setattr("gaia_cli.context.MasterClient", fake.client_class())
    return fake
