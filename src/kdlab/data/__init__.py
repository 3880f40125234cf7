"""Data sets as whole tensors: located, downloaded if missing, hash-verified, normalised.

`base` says what a data set is, `datasets` holds the built-in ones and `load_dataset`, `npz`
reads your own, `pack` writes one. Nothing is imported here, so that `kdlab data pack` and the
command line's options load without torch.
"""
