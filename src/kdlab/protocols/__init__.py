"""Experiments: each protocol declares its models, trains them through the engine, reports."""
