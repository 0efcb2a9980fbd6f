"""The vocabulary of streaming the audit trail, shared by the config format and the sinks."""

from __future__ import annotations

from typing import Literal, get_args

# how an event is written: CloudEvents 1.0 structured JSON, or OCSF Authentication (3002)
Format = Literal["cloudevents", "ocsf"]
# RFC 5424 facilities, in code order
Facility = Literal[
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv", "ftp",
    "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
]  # fmt: skip
FACILITY_CODES: dict[str, int] = {name: code for code, name in enumerate(get_args(Facility))}
# where a sink seen for the first time starts: the whole retained trail, or events from now on
StartAt = Literal["oldest", "newest"]
