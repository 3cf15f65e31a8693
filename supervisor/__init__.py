"""hlsdash: live ABR transcoder, CMAF packager and CDN-ready origin."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("hlsdash")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+src"
