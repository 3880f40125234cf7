"""Rendering of measured numbers: tables, figures, reports, DataFrames."""
