"""Structured log lines: the process's fields on every line (from any thread), the app and
instance where the code knows them, as key=value text or JSON."""
import io
import json
import logging
import threading

import pytest

from gaia_common import logctx


@pytest.fixture
def capture(monkeypatch):
    """A logger writing through the formatter under test; process fields restored afterwards."""
    monkeypatch.setattr(logctx, "_process", {})

    def make(fmt: str):
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logctx.formatter("node", fmt))
        logger = logging.getLogger(f"gaia.test.{fmt}")
        logger.handlers[:] = [handler]
        logger.setLevel(logging.INFO)
        logger.propagate = False
        return logger, stream
    return make


def test_text_lines_carry_process_and_context_fields(capture):
    log, out = capture("text")
    logctx.set_process_fields(cluster="prod", node="n1", master="")
    log.info("plain")
    with logctx.log_context(app="hello-1a2b", instance="0"):
        log.info("container %s started", "hello-1a2b.0.0")
        log.info("about another", extra={"instance": "3", "container": "hello-1a2b.3.0"})
    first, second, third = out.getvalue().splitlines()
    assert first.endswith("plain cluster=prod node=n1")
    assert " node[" in first and "gaia.test.text: plain" in first
    assert second.endswith("container hello-1a2b.0.0 started cluster=prod node=n1 app=hello-1a2b instance=0")
    assert "instance=3 container=hello-1a2b.3.0" in third, "extra= wins over the context"


def test_context_ends_with_its_block_and_values_are_quoted(capture):
    log, out = capture("text")
    with logctx.log_context(app="a b"):
        log.info("in")
    log.info("out")
    inside, outside = out.getvalue().splitlines()
    assert inside.endswith('app="a b"')
    assert "app=" not in outside


def test_process_fields_reach_every_thread(capture):
    """A new thread starts with an empty contextvars context: process fields must not live there."""
    log, out = capture("text")
    logctx.set_process_fields(node="n7")
    with logctx.log_context(app="only-here"):
        thread = threading.Thread(target=lambda: log.info("from a thread"))
        thread.start()
        thread.join()
    line = out.getvalue().strip()
    assert line.endswith("node=n7"), line


def test_json_lines(capture):
    log, out = capture("json")
    logctx.set_process_fields(cluster="prod", node="n1")
    with logctx.log_context(app="hello-1", instance="2"):
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            log.exception("failed %d", 3)
    doc = json.loads(out.getvalue())
    assert doc["message"] == "failed 3" and doc["level"] == "ERROR" and doc["daemon"] == "node"
    assert (doc["cluster"], doc["node"], doc["app"], doc["instance"]) == ("prod", "n1", "hello-1", "2")
    assert "RuntimeError: boom" in doc["exception"]
    assert doc["time"].endswith("+00:00") and doc["logger"] == "gaia.test.json"


def test_unknown_format():
    with pytest.raises(ValueError, match="xml"):
        logctx.formatter("node", "xml")
