"""How the worker takes its secret: from the pipe QUIVER_WORKER_SECRET_FD names, else from
QUIVER_WORKER_SECRET; either way it leaves nothing for UDF code to find."""

from __future__ import annotations

import logging
import os

import pytest

from quiver.worker.__main__ import SECRET_ENV, SECRET_FD_ENV, _take_secret

SECRET = "ab" * 32


@pytest.fixture
def log():
    return logging.getLogger("test-worker-secret")


def secret_pipe(text: str) -> int:
    read_end, write_end = os.pipe()
    os.write(write_end, text.encode())
    os.close(write_end)
    return read_end


def test_the_pipe_is_read_once_and_closed(monkeypatch, log):
    fd = secret_pipe(SECRET)
    monkeypatch.setenv(SECRET_FD_ENV, str(fd))
    monkeypatch.delenv(SECRET_ENV, raising=False)
    assert _take_secret(log) == SECRET
    with pytest.raises(OSError):
        os.fstat(fd)
    assert SECRET_FD_ENV not in os.environ


def test_the_pipe_wins_over_the_environment(monkeypatch, log):
    monkeypatch.setenv(SECRET_FD_ENV, str(secret_pipe(SECRET)))
    monkeypatch.setenv(SECRET_ENV, "other")
    assert _take_secret(log) == SECRET
    assert SECRET_ENV not in os.environ


def test_the_environment_serves_workers_started_by_hand(monkeypatch, log):
    monkeypatch.delenv(SECRET_FD_ENV, raising=False)
    monkeypatch.setenv(SECRET_ENV, SECRET)
    assert _take_secret(log) == SECRET
    assert SECRET_ENV not in os.environ


@pytest.mark.parametrize("value", ["not-a-number", "987"])
def test_an_unusable_descriptor_is_an_error(monkeypatch, log, value, caplog):
    monkeypatch.setenv(SECRET_FD_ENV, value)
    assert _take_secret(log) is None
    assert SECRET_FD_ENV in caplog.text


def test_no_secret_at_all_is_an_error(monkeypatch, log, caplog):
    monkeypatch.delenv(SECRET_FD_ENV, raising=False)
    monkeypatch.delenv(SECRET_ENV, raising=False)
    assert _take_secret(log) is None
    assert SECRET_ENV in caplog.text


def test_a_trailing_newline_is_not_part_of_the_secret(monkeypatch, log):
    monkeypatch.setenv(SECRET_FD_ENV, str(secret_pipe(SECRET + "\n")))
    assert _take_secret(log) == SECRET
    monkeypatch.setenv(SECRET_ENV, SECRET + "\r\n")
    assert _take_secret(log) == SECRET


@pytest.mark.parametrize("text", ["", "\n"])
def test_an_empty_secret_is_an_error(monkeypatch, log, caplog, text):
    monkeypatch.setenv(SECRET_FD_ENV, str(secret_pipe(text)))
    assert _take_secret(log) is None
    assert "empty" in caplog.text
