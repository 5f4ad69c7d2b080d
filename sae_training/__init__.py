"""Sparse-autoencoder training (Matryoshka BatchTopK), single process or torch.distributed."""
