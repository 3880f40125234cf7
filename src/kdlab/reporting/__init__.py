"""Tables, figures and reports written from measured numbers."""

from kdlab.reporting.mythical_digit import write_mythical_digit_outputs

__all__ = ["write_mythical_digit_outputs"]
