"""Where callflow keeps its state on this machine (one place, overridable)."""

import os
from pathlib import Path

STATE_DIR = Path(os.environ.get("CALLFLOW_STATE_DIR", "/var/lib/callflow"))
#: The store (config key store.database): this SQLite file by default, or a postgresql:// URL (callflow/store/db.py).
DEFAULT_DB = os.environ.get("CALLFLOW_STORE_DATABASE", str(STATE_DIR / "callflow.db"))
#: The embedded SMS "gateway": messages appended here when sms.backend = "log".
DEFAULT_SMS_LOG = str(STATE_DIR / "sms-outbox.log")
