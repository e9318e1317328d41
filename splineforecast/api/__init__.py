"""The HTTP API for a GUI (SPEC §7): ``python -m splineforecast.api``."""

from splineforecast.api.app import create_app
from splineforecast.api.settings import Settings, SettingsError

__all__ = ["Settings", "SettingsError", "create_app"]
