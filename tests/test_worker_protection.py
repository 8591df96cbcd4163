"""ECS task scale-in protection through a stand-in agent endpoint."""

from __future__ import annotations

import pytest

from tests.worker_support import AgentStub
from worker.protection import AGENT_URI_VARIABLE, TaskProtection


def test_enable_and_disable_put_the_agent_state():
    with AgentStub() as agent:
        protection = TaskProtection(agent.uri, minutes=30)
        protection.enable()
        protection.disable()
    assert agent.requests == [
        (
            "PUT",
            "/api/task/task-protection/v1/state",
            {"ProtectionEnabled": True, "ExpiresInMinutes": 30},
        ),
        ("PUT", "/api/task/task-protection/v1/state", {"ProtectionEnabled": False}),
    ]


def test_renew_asks_again_after_half_the_protected_time():
    now = [1000.0]
    with AgentStub() as agent:
        protection = TaskProtection(agent.uri, minutes=10, clock=lambda: now[0])
        protection.renew()
        protection.enable()
        now[0] += 299
        protection.renew()
        now[0] += 1
        protection.renew()
        protection.disable()
        protection.renew()
    assert agent.states() == [True, True, False]


def test_a_failing_agent_is_logged_and_retried_on_the_next_renew():
    with AgentStub(status=500) as agent:
        protection = TaskProtection(agent.uri)
        protection.enable()
        protection.renew()
    assert agent.states() == [True, True]


def test_without_an_agent_uri_protection_does_nothing(monkeypatch):
    def no_network(*_args, **_kwargs):
        raise AssertionError("no agent call expected outside ECS")

    monkeypatch.setattr("urllib.request.urlopen", no_network)
    protection = TaskProtection.from_env({})
    protection.enable()
    protection.renew()
    protection.disable()


def test_from_env_reads_the_agent_uri():
    with AgentStub() as agent:
        TaskProtection.from_env({AGENT_URI_VARIABLE: agent.uri}).enable()
    assert agent.states() == [True]


def test_a_non_http_agent_uri_is_refused():
    with pytest.raises(ValueError, match=AGENT_URI_VARIABLE):
        TaskProtection("file:///etc/passwd")
