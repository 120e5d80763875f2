import pytest

import genlab


@pytest.fixture(scope="session")
def digits():
    return genlab.datasets.load("digits")


@pytest.fixture
def tiny_images(digits):
    X, y = digits
    return X[:200].copy(), y[:200].copy()
