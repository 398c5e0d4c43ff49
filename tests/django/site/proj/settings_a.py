from .settings_common import *  # noqa: F401,F403

SITE_LABEL = "alpha"
