"""Releases: immutable, digest-pinned sets of component images."""

from stella_operators.release.model import ComponentDigest, Release, ReleaseState
from stella_operators.release.refs import ImageRef, RefError, parse_image_ref

__all__ = ["ComponentDigest", "ImageRef", "RefError", "Release", "ReleaseState", "parse_image_ref"]
