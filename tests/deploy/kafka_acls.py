"""deploy/kafka/acls.tsv: the ACLs the compose broker gets, rendered from `devstack.acls`.

The compose file cannot run Python in the broker's image, so the rendering is committed and
`test_kafka_security.py` fails when it no longer matches the code. After changing devstack/acls.py
or a topic name, regenerate it:

    .state/venv/bin/python -m tests.deploy.kafka_acls
"""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings

from samtykke.adapters.settings import Settings
from samtykke.devstack.acls import acl_rules, render

ACL_FILE = Path(__file__).resolve().parents[2] / "deploy" / "kafka" / "acls.tsv"
HEADER = (
    "# The ACLs deploy/kafka/apply-security.sh adds on the compose broker, one binding a line:\n"
    "# acl<TAB>User:<name><TAB>type<TAB>pattern<TAB>name<TAB>operation. Rendered from\n"
    "# services/samtykke/devstack/acls.py; regenerate with `python -m tests.deploy.kafka_acls`.\n"
)


def expected_lines(settings: BaseSettings) -> list[str]:
    if not isinstance(settings, Settings):
        raise TypeError("the ACLs are rendered from samtykke Settings")
    return render(acl_rules(settings))


def committed_lines(path: Path = ACL_FILE) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line and not line.startswith("#")]


def write(settings: BaseSettings, path: Path = ACL_FILE) -> None:
    path.write_text(HEADER + "".join(f"{line}\n" for line in expected_lines(settings)), encoding="utf-8")


if __name__ == "__main__":
    from .settings_check import settings_from_env

    defaults = settings_from_env({}, Settings)
    assert defaults is not None
    write(defaults)
    print(f"wrote {ACL_FILE}")
