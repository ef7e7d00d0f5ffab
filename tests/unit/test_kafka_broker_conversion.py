"""`samtykke stack up` converts a running broker whose listeners are not the wanted ones: the
rendered config of its start says what it serves. No broker runs here."""

from __future__ import annotations

from pathlib import Path

from samtykke.adapters.settings import Settings
from samtykke.devstack import kafka
from samtykke.devstack.kafka import KafkaBroker
from samtykke.devstack.layout import StackLayout
from samtykke.devstack.parts import Reconfigurable

PLAINTEXT = "listeners=PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093\n"
SECURED = "listeners=SASL_SSL://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093\n"


def broker(state: Path, secured: bool | None) -> KafkaBroker:
    settings = Settings(state_dir=state)
    return KafkaBroker(settings, StackLayout.from_settings(settings), secured=secured)


def test_the_local_broker_is_secured_by_default(tmp_path: Path) -> None:
    assert kafka.SECURED_BY_DEFAULT is True
    assert broker(tmp_path, None).secured


def test_a_plaintext_broker_is_restarted_secured_and_back(tmp_path: Path) -> None:
    secured, plain = broker(tmp_path, True), broker(tmp_path, False)
    assert isinstance(secured, Reconfigurable)
    assert secured.needs_restart() is None  # never started: nothing to convert
    secured.config_path.parent.mkdir(parents=True)
    secured.config_path.write_text(PLAINTEXT)
    assert secured.needs_restart() == "serves plaintext, secured is wanted"
    assert plain.needs_restart() is None
    secured.config_path.write_text(SECURED)
    assert secured.needs_restart() is None
    assert plain.needs_restart() == "serves SASL_SSL, plaintext is wanted"
