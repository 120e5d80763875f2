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


@pytest.fixture(scope="module")
def planted():
    """Planted-group interactions for the recommenders: (train users, test users), CSR."""
    from genlab.data.protocol import make_interactions, split_users

    data = make_interactions(1500, 500, 8, random_state=0)
    train_rows, _, test_rows = split_users(data.n_users, 150, random_state=0)
    return data.matrix[train_rows], data.matrix[test_rows]
