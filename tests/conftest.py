import pytest

import genlab
from genlab.cli import main


def run(capsys, *argv):
    """``genlab *argv`` in-process: (exit code, stdout, stderr)."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_user_error(code, err, *words):
    """Exit 2 and exactly one line on stderr, no traceback, containing every word."""
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, err


@pytest.fixture(scope="session")
def digits():
    return genlab.datasets.load("digits")


@pytest.fixture
def tiny_images(digits):
    X, y = digits
    return X[:200].copy(), y[:200].copy()
