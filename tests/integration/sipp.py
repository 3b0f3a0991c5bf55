"""The SIPp driver lives in the package (callflow/pbx/sipp.py: ops and `callflow bench pbx` use it too)."""

from callflow.pbx.sipp import *  # noqa: F401,F403
from callflow.pbx.sipp import _BYE_FROM_THEM, _BYE_FROM_US, _UAS_ANSWER, _UAS_HEAD  # noqa: F401
