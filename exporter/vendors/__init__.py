"""Vendor packages; the registry that lists them is `exporter.registry`."""
