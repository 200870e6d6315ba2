"""rewriter: route a vendor's private images through a license proxy at render time."""

__version__ = "0.1.0"
