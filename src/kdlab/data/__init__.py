"""Data sets as whole tensors: located, downloaded if missing, hash-verified, normalised."""

from kdlab.data.datasets import DATASETS, Dataset, DatasetSpec, load_dataset

__all__ = ["DATASETS", "Dataset", "DatasetSpec", "load_dataset"]
