"""Who may do what on the secured local broker: every principal's ACLs, kept as code.

Pure data and its rendering, nothing else. `devstack.kafka` sends the rendering to the broker at
every start of a secured broker and makes the broker's ACLs equal to it: missing bindings are
added, bindings not listed here removed. Names come from the settings (the contract and registers
topics, the projectors' group prefix, the suppression dead-letter topic), so a renamed topic stays
covered.

The same principal names authenticate on three doors, so one set of ACLs covers them all: a SCRAM
user, an OAUTHBEARER token whose `sub` claim is the name, or a client certificate `CN=<name>` on the
mutual-TLS listener.

- `admin` is a super user (the broker's own inter-broker login); it needs no ACLs, and gets no
  client certificate.
- `consent` creates and writes the contract topics: changes, subjects and the relay's
  watermarks (idempotent producer: IDEMPOTENT_WRITE).
- Each projector reads the contract topics, the changes and subjects in its consumer group
  `<prefix>.<domain>`, the watermarks by assignment, and writes its dead-letter topic
  `<prefix>.<domain>.dlq` (`projections.resources` creates it; a rebuild writes it with the
  idempotent producer). Its Faust app creates no internal topics: no tables (no changelogs),
  `topic_disable_leader` (no `<app id>-__assignor-__leader` topic) and `topic_allow_declare=False`
  (see `projections.app.faust_settings`), so none are allowed.
- `suppression` reads the contract topics by assignment, without a consumer group
  (`suppression.feed`), creates and writes its dead-letter topic, and owns the registers topic:
  creates, writes and reads it (`suppression.register_feed`, `register_topic`).
- `tools` is the development principal of the CLI's tail and demo, the benchmarks and the tests,
  which make topics with random prefixes (`t<hex>.consent.changes`): every topic, group and
  transactional id, and the cluster rights a client uses (create topics, describe, idempotence),
  but not ALTER on the cluster: changing who may do what stays with `admin`.
- `ANONYMOUS` is whoever connects to the plaintext benchmark listener: only the benchmark
  floor's own topics (`bench-floor-<tag>`), nothing of the platform's.

Topics are named literally, not by their shared prefix `consent.`: the registers topic lives
under it too, and only the suppression service may write it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from samtykke.adapters.dead_letters import dead_letter_topic
from samtykke.adapters.settings import Settings

ResourceType = Literal["TOPIC", "GROUP", "CLUSTER", "TRANSACTIONAL_ID"]
PatternType = Literal["LITERAL", "PREFIXED"]
Operation = Literal[
    "ALL",
    "READ",
    "WRITE",
    "CREATE",
    "DELETE",
    "ALTER",
    "DESCRIBE",
    "DESCRIBE_CONFIGS",
    "ALTER_CONFIGS",
    "IDEMPOTENT_WRITE",
]

CLUSTER = "kafka-cluster"  # the one name a CLUSTER resource has
ANY = "*"  # a LITERAL `*` matches every resource of its type

ADMIN = "admin"
CONSENT = "consent"
SUPPRESSION = "suppression"
TOOLS = "tools"
ANONYMOUS = "ANONYMOUS"
# as in projections.domains.DOMAINS (a unit test keeps the two in step)
PROJECTION_DOMAINS: tuple[str, ...] = ("marketing", "analytics", "customer_service")
BENCHMARK_TOPIC_PREFIX = "bench-floor-"


def projector_principal(domain: str) -> str:
    return f"projector-{domain.replace('_', '-')}"


# every principal that logs in with SCRAM-SHA-512; the passwords live in <state>/kafka/credentials.json
SCRAM_USERS: tuple[str, ...] = (
    ADMIN,
    CONSENT,
    *(projector_principal(domain) for domain in PROJECTION_DOMAINS),
    SUPPRESSION,
    TOOLS,
)


# who gets a client certificate for the mutual-TLS listener (`kafka_tls`): everyone but the super user
CERTIFICATE_USERS: tuple[str, ...] = tuple(user for user in SCRAM_USERS if user != ADMIN)


@dataclass(frozen=True)
class AclRule:
    """ALLOW `operations` on the resources a pattern names, to one user, from any host."""

    principal: str  # the user name, without `User:`
    resource_type: ResourceType
    pattern_type: PatternType
    resource_name: str
    operations: tuple[Operation, ...]


def contract_topics(settings: Settings) -> tuple[str, ...]:
    """What the consent service publishes and every reader reads."""
    return tuple(dict.fromkeys((settings.topic_changes, settings.topic_subjects, settings.topic_watermarks)))


def _on_contract_topics(settings: Settings, principal: str, *operations: Operation) -> list[AclRule]:
    return [AclRule(principal, "TOPIC", "LITERAL", name, operations) for name in contract_topics(settings)]


def _idempotent_writer(principal: str) -> AclRule:
    return AclRule(principal, "CLUSTER", "LITERAL", CLUSTER, ("IDEMPOTENT_WRITE",))


def _projector_rules(settings: Settings, domain: str) -> list[AclRule]:
    principal = projector_principal(domain)
    group = f"{settings.projection_group_prefix}.{domain}"  # projections.domains.Domain.group
    return [
        *_on_contract_topics(settings, principal, "READ", "DESCRIBE"),
        AclRule(principal, "TOPIC", "LITERAL", dead_letter_topic(group), ("WRITE", "CREATE", "DESCRIBE")),
        AclRule(principal, "GROUP", "LITERAL", group, ("READ",)),
        _idempotent_writer(principal),
    ]


def acl_rules(settings: Settings) -> tuple[AclRule, ...]:
    """Every ACL of the local broker, for the names in `settings`."""
    return (
        *_on_contract_topics(settings, CONSENT, "WRITE", "DESCRIBE", "CREATE"),
        _idempotent_writer(CONSENT),
        *(rule for domain in PROJECTION_DOMAINS for rule in _projector_rules(settings, domain)),
        *_on_contract_topics(settings, SUPPRESSION, "READ", "DESCRIBE"),
        AclRule(SUPPRESSION, "TOPIC", "LITERAL", settings.suppression_dlq_topic, ("WRITE", "CREATE", "DESCRIBE")),
        AclRule(SUPPRESSION, "TOPIC", "LITERAL", settings.topic_registers, ("READ", "WRITE", "CREATE", "DESCRIBE")),
        _idempotent_writer(SUPPRESSION),
        AclRule(TOOLS, "TOPIC", "LITERAL", ANY, ("ALL",)),
        AclRule(TOOLS, "GROUP", "LITERAL", ANY, ("ALL",)),
        AclRule(TOOLS, "TRANSACTIONAL_ID", "LITERAL", ANY, ("ALL",)),
        AclRule(TOOLS, "CLUSTER", "LITERAL", CLUSTER, ("CREATE", "DESCRIBE", "DESCRIBE_CONFIGS", "IDEMPOTENT_WRITE")),
        AclRule(
            ANONYMOUS,
            "TOPIC",
            "PREFIXED",
            BENCHMARK_TOPIC_PREFIX,
            ("CREATE", "DELETE", "DESCRIBE", "READ", "WRITE"),
        ),
    )


def render(rules: Iterable[AclRule]) -> list[str]:
    """One line per binding, `acl<TAB>User:<name><TAB>type<TAB>pattern<TAB>name<TAB>operation`,
    the form `files/ApplySecurity.java` reads; a binding listed twice is rendered once."""
    lines: dict[str, None] = {}
    for rule in rules:
        fields = (f"User:{rule.principal}", rule.resource_type, rule.pattern_type, rule.resource_name)
        if any(not field or any(c in field for c in "\t\r\n") for field in fields):
            raise ValueError(f"an ACL field is empty or holds a tab or line break: {rule}")
        if rule.resource_type == "CLUSTER" and rule.resource_name != CLUSTER:
            raise ValueError(f"a cluster ACL must name {CLUSTER!r}: {rule}")
        for operation in rule.operations:
            lines["\t".join(("acl", *fields, operation))] = None
    return list(lines)
