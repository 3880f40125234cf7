"""Model families, stored with a leading model axis so that a group of K models trains as one."""

from kdlab.models.cnn import StackedCNN
from kdlab.models.mlp import StackedMLP

__all__ = ["StackedCNN", "StackedMLP"]
