"""The local real stack: Apache Kafka (KRaft), Apicurio Registry and PostgreSQL 15.

Everything runs on 127.0.0.1 from the ignored state folder (`settings.state_dir`):
downloads, data, logs and pidfiles. The servers outlive the command that
started them; `down` stops them again.

    from samtykke.devstack import up, down, status, start_part, stop_part, StackError
"""

from samtykke.devstack.control import down, start_part, status, stop_part, up
from samtykke.devstack.parts import PART_NAMES, PartStatus, StackError

__all__ = [
    "PART_NAMES",
    "PartStatus",
    "StackError",
    "down",
    "start_part",
    "status",
    "stop_part",
    "up",
]
