"""scikit-learn's estimator checks over every genlab estimator, on tiny fast instances."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from genlab import EASE, GAN, VAE, VAEGAN, Autoencoder, MultDAE, MultVAE, Popularity

TRAIN = {"epochs": 2, "batch_size": 32, "random_state": 0, "verbose": False, "device": "cpu"}

ESTIMATORS = [
    Autoencoder(latent_dim=2, arch="linear", **TRAIN),
    Autoencoder(latent_dim=2, arch="mlp", hidden=(8,), **TRAIN),
    VAE(latent_dim=2, hidden=(8,), likelihood="bernoulli", n_importance=4, **TRAIN),
    VAE(latent_dim=2, hidden=(8,), likelihood="gaussian", n_importance=4, **TRAIN),
    GAN(latent_dim=2, hidden=(8,), **TRAIN),
    VAEGAN(latent_dim=2, hidden=(8,), d_hidden=(8,), **TRAIN),
    MultVAE(hidden=(8,), latent_dim=2, **TRAIN),
    MultDAE(hidden=(8,), latent_dim=2, **TRAIN),
    EASE(random_state=0),  # l2 chosen on validation users
    EASE(l2=10.0, random_state=0),
    Popularity(),
]


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compatible(estimator, check):
    check(estimator)
