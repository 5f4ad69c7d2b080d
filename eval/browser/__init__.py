"""The feature browser (``radinterp browse``): the autointerp site extended with each feature's
steering effect, bridge matches and the SAE eval headline; static, offline, from disk."""

from eval.browser.build import build_browser
from eval.browser.config import BrowserConfig

__all__ = ["BrowserConfig", "build_browser"]
