"""Run under torchrun by tests/test_distributed.py: every family trains a few steps through the Python
API; rank 0 writes each model's weights (and every rank's checksum of them) to OUT/<name>.safetensors."""

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import save_file
from sklearn.datasets import load_digits

import genlab
from genlab.datasets import make_interactions

digits = load_digits()
X, y = digits.data[:384].astype(np.float32), digits.target[:384]
images = X.reshape(-1, 1, 8, 8)
common = {"epochs": 2, "random_state": 0, "device": "cpu", "validation_fraction": 0.25}


def _mapped(array: np.ndarray) -> np.ndarray:
    """``array`` as a memory-mapped .npy of this process's own: the streamed path (rows read a batch at a time)."""
    path = Path(tempfile.mkdtemp()) / "x.npy"
    np.save(path, array)
    return np.load(path, mmap_mode="r")


MODELS = {
    "ae": lambda: genlab.Autoencoder(batch_size=64, **common).fit(X),
    "ae_mapped": lambda: genlab.Autoencoder(batch_size=64, **common).fit(_mapped(X)),
    "ae_conv": lambda: genlab.Autoencoder(arch="conv", batch_size=64, latent_dim=4, **common).fit(images),
    "vae": lambda: genlab.VAE(batch_size=64, latent_dim=4, **common).fit(X),
    "vae_aggressive": lambda: genlab.VAE(batch_size=64, latent_dim=4, training="aggressive", **common).fit(X),
    "cvae": lambda: genlab.VAE(batch_size=64, latent_dim=4, conditional=True, **common).fit(X, y),
    "gan": lambda: genlab.GAN(batch_size=64, latent_dim=8, d_steps=2, ema=0.9, **common).fit(X),
    "dcgan": lambda: genlab.GAN(arch="conv", batch_size=64, latent_dim=8, loss="wasserstein", penalty="gp", d_steps=2,
                                **common).fit(images),
    "multvae": lambda: genlab.MultVAE(batch_size=64, validation_users=40, epochs=2, random_state=0, device="cpu").fit(
        make_interactions(400, 120, random_state=0).matrix),
}


def main(out: Path, names: list[str]) -> None:
    for name in names:
        est = MODELS[name]()
        state = {k: v.detach().contiguous() for k, v in est.module_.state_dict().items()}
        checksum = torch.stack([v.double().sum() for v in state.values()])  # one number per tensor, on every rank
        sums = [torch.zeros_like(checksum) for _ in range(dist.get_world_size())]
        dist.all_gather(sums, checksum)
        if dist.get_rank() == 0:
            save_file(state, str(out / f"{name}.safetensors"))
            (out / f"{name}.json").write_text(json.dumps({"checksums": [s.tolist() for s in sums], "history": est.history_}))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2].split(","))
