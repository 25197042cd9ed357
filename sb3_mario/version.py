"""The package version (read by the build, shown as ``sb3_mario.__version__``)."""

__version__ = "0.1.0"
