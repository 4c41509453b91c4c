"""/healthz answers 200 only when the database, the broker and a worker are alive."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.test import Client
from django_q.conf import Conf

from syncbridge import health

pytestmark = pytest.mark.django_db


def _clusters(monkeypatch, *states: str) -> None:
    stats = [SimpleNamespace(status=state) for state in states]
    monkeypatch.setattr(health.Stat, "get_all", staticmethod(lambda broker=None: stats))


def test_healthy_installation_answers_200_without_a_login(monkeypatch):
    _clusters(monkeypatch, Conf.IDLE)

    response = Client().get("/healthz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["failing"] == []
    assert body["checks"] == {"database": "ok", "broker": "ok", "worker": "ok: 1 cluster(s)"}
    assert "no-cache" in response["Cache-Control"]


def test_no_worker_heartbeat_answers_503_naming_the_worker(monkeypatch):
    _clusters(monkeypatch)

    response = Client().get("/healthz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "failing"
    assert body["failing"] == ["worker"]
    assert "no task cluster sent a heartbeat" in body["checks"]["worker"]
    assert body["checks"]["database"] == "ok"


def test_a_cluster_that_is_stopping_is_not_a_worker(monkeypatch):
    _clusters(monkeypatch, Conf.STOPPING, Conf.STOPPED)

    assert Client().get("/healthz").json()["failing"] == ["worker"]


def test_a_broken_database_and_broker_are_each_named(monkeypatch):
    _clusters(monkeypatch, Conf.WORKING)

    def database_down():
        raise ConnectionError("could not connect to server")

    class DeadBroker:
        def ping(self):
            raise ConnectionError("Error 111 connecting to 127.0.0.1:6379")

    monkeypatch.setitem(health.CHECKS, "database", database_down)
    monkeypatch.setattr(health, "get_broker", lambda: DeadBroker())

    response = Client().get("/healthz")

    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["database", "broker"]
    assert body["checks"]["broker"] == (
        "failing: ConnectionError: Error 111 connecting to 127.0.0.1:6379"
    )
    assert body["checks"]["worker"] == "ok: 1 cluster(s)"


def test_a_head_request_gets_the_status_without_a_body(monkeypatch):
    _clusters(monkeypatch)

    response = Client().head("/healthz")

    assert response.status_code == 503
    assert response.content == b""
