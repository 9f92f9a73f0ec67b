"""session-exporter: a Prometheus exporter for remote-session vendors."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("session-exporter")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
