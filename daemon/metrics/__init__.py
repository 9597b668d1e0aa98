"""Prometheus text exposition of the appliance's statistics (format 0.0.4), from plain values."""

from .exposition import render_prometheus as render_prometheus

__all__ = ["render_prometheus"]
