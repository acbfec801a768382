"""Fixtures for the end-to-end suite.

    portico(config, args=None, **subst) -> Portico   start the real binary (see lib/portico.py)
    origin(handler=None, name=None, ...) -> Origin   start an origin server (see lib/origin.py)

Teardown stops every process with SIGTERM and fails the test when the exit
status is not clean or stderr holds a sanitizer report.
"""
import os
import resource
import shutil
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lib import portico as P  # noqa: E402
from lib.origin import Origin  # noqa: E402


def pytest_sessionstart(session):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 65536)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if not os.access(P.BIN, os.X_OK):
        pytest.exit("portico binary not found at %s (run `make` or set PORTICO_BIN)" % P.BIN, returncode=1)
    # Run a private copy: a rebuild during the run must not swap the binary under the tests.
    d = tempfile.mkdtemp(prefix="portico-e2e-")
    copy = os.path.join(d, "portico")
    shutil.copy2(P.BIN, copy)
    P.BIN = copy


@pytest.fixture
def portico(tmp_path):
    started = []

    def start(config=None, args=None, wait=True, env=None, **subst):
        p = P.Portico(tmp_path / ("portico%d" % len(started)), config, subst, args, env)
        started.append(p)
        p.start(wait=wait)
        return p

    yield start
    problems = []
    for p in started:
        problems += p.finish()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def origin():
    made = []

    def make(handler=None, name=None, **kw):
        o = Origin(handler, name=name, **kw)
        made.append(o)
        return o.start()

    yield make
    for o in made:
        o.stop()



def pytest_sessionfinish(session, exitstatus):
    d = os.path.dirname(P.BIN)
    if os.path.basename(d).startswith("portico-e2e-"):
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def dead_port():
    """dead_port() -> DeadPort: an address that refuses connections for the whole test."""
    made = []

    def make():
        d = P.DeadPort()
        made.append(d)
        return d

    yield make
    for d in made:
        d.release()
