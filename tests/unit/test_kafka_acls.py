"""The local broker's ACLs as code (`devstack.acls`): who may do what, checked against the rules the
way Kafka's authoriser reads them, and the rendering the broker is given (pure: no broker)."""

from __future__ import annotations

import pytest

from samtykke.adapters.dead_letters import dead_letter_topic
from samtykke.adapters.settings import Settings
from samtykke.devstack import acls
from samtykke.devstack.acls import (
    ANONYMOUS,
    CONSENT,
    SCRAM_USERS,
    SUPPRESSION,
    TOOLS,
    AclRule,
    acl_rules,
    contract_topics,
    projector_principal,
    render,
)
from samtykke.projections.app import faust_settings
from samtykke.projections.domains import DOMAINS

SETTINGS = Settings()
RULES = acl_rules(SETTINGS)
CONTRACT = (SETTINGS.topic_changes, SETTINGS.topic_subjects, SETTINGS.topic_watermarks)
MARKETING = projector_principal("marketing")
PROJECTORS = [projector_principal(domain) for domain in acls.PROJECTION_DOMAINS]
EVERY_OPERATION: tuple[acls.Operation, ...] = (
    "READ",
    "WRITE",
    "CREATE",
    "DELETE",
    "ALTER",
    "DESCRIBE",
    "DESCRIBE_CONFIGS",
    "ALTER_CONFIGS",
    "IDEMPOTENT_WRITE",
)


def allowed(
    principal: str,
    operation: str,
    resource_type: acls.ResourceType,
    name: str = acls.CLUSTER,
    rules: tuple[AclRule, ...] = RULES,
) -> bool:
    """Kafka's reading of ALLOW rules: literal, `*` or prefix match; ALL covers every operation;
    READ, WRITE, DELETE and ALTER imply DESCRIBE (ALTER_CONFIGS implies DESCRIBE_CONFIGS)."""
    implied = {"DESCRIBE": {"READ", "WRITE", "DELETE", "ALTER"}, "DESCRIBE_CONFIGS": {"ALTER_CONFIGS"}}
    for rule in rules:
        if rule.principal != principal or rule.resource_type != resource_type:
            continue
        if rule.pattern_type == "LITERAL":
            matches = rule.resource_name in (name, acls.ANY)
        else:
            matches = name.startswith(rule.resource_name)
        granted = set(rule.operations)
        if matches and ("ALL" in granted or operation in granted or granted & implied.get(operation, set())):
            return True
    return False


def test_every_projection_domain_has_its_principal_and_acls() -> None:
    assert tuple(DOMAINS) == acls.PROJECTION_DOMAINS
    assert ("admin", "consent", *PROJECTORS, "suppression", "tools") == SCRAM_USERS
    assert PROJECTORS == ["projector-marketing", "projector-analytics", "projector-customer-service"]
    # every principal with ACLs logs in with SCRAM, except the benchmark listener's anonymous clients
    assert {rule.principal for rule in RULES} == (set(SCRAM_USERS) - {acls.ADMIN}) | {ANONYMOUS}


def test_only_the_consent_service_writes_and_creates_the_contract_topics() -> None:
    assert contract_topics(SETTINGS) == ("consent.changes.v2", "consent.subjects", "consent.watermarks")
    for topic in CONTRACT:
        for operation in ("WRITE", "CREATE", "DESCRIBE"):
            assert allowed(CONSENT, operation, "TOPIC", topic)
        writers = {principal for principal in SCRAM_USERS if allowed(principal, "WRITE", "TOPIC", topic)}
        assert writers == {CONSENT, TOOLS}
    assert allowed(CONSENT, "IDEMPOTENT_WRITE", "CLUSTER")
    assert not allowed(CONSENT, "READ", "TOPIC", SETTINGS.topic_changes)
    assert not allowed(CONSENT, "WRITE", "TOPIC", SETTINGS.suppression_dlq_topic)
    assert not allowed(CONSENT, "WRITE", "TOPIC", SETTINGS.topic_registers)  # in its namespace, not its own


@pytest.mark.parametrize("domain", acls.PROJECTION_DOMAINS)
def test_a_projector_reads_the_contract_in_its_group_and_writes_only_its_dead_letters(domain: str) -> None:
    principal = projector_principal(domain)
    group = DOMAINS[domain].group(SETTINGS)
    own_dlq = dead_letter_topic(group)  # as projections.dead_letters.DeadLetterQueue names it
    for topic in CONTRACT:
        assert allowed(principal, "READ", "TOPIC", topic)
        assert allowed(principal, "DESCRIBE", "TOPIC", topic)
        assert not allowed(principal, "WRITE", "TOPIC", topic)
        assert not allowed(principal, "CREATE", "TOPIC", topic)
    assert allowed(principal, "READ", "GROUP", group)
    for operation in ("WRITE", "CREATE", "DESCRIBE"):
        assert allowed(principal, operation, "TOPIC", own_dlq)
    for other in acls.PROJECTION_DOMAINS:
        if other != domain:
            assert not allowed(principal, "WRITE", "TOPIC", dead_letter_topic(DOMAINS[other].group(SETTINGS)))
            assert not allowed(principal, "READ", "GROUP", DOMAINS[other].group(SETTINGS))
    assert not allowed(principal, "WRITE", "TOPIC", SETTINGS.suppression_dlq_topic)
    assert not allowed(principal, "READ", "TOPIC", SETTINGS.topic_registers)
    assert not allowed(principal, "ALTER", "CLUSTER")


def test_the_projectors_faust_apps_make_no_internal_topics_so_none_are_allowed() -> None:
    conf = faust_settings(DOMAINS["marketing"], SETTINGS)
    # no leader topic (<app id>-__assignor-__leader) and no declared topics; no tables means no changelogs
    assert conf["topic_disable_leader"] is True
    assert conf["topic_allow_declare"] is False
    app_id = DOMAINS["marketing"].group(SETTINGS)
    assert not allowed(MARKETING, "CREATE", "TOPIC", f"{app_id}-__assignor-__leader")


def test_the_suppression_service_reads_without_a_group_writes_its_dead_letters_and_owns_the_registers() -> None:
    for topic in CONTRACT:
        assert allowed(SUPPRESSION, "READ", "TOPIC", topic)
        assert not allowed(SUPPRESSION, "WRITE", "TOPIC", topic)
    assert not [rule for rule in RULES if rule.principal == SUPPRESSION and rule.resource_type == "GROUP"]
    for operation in ("WRITE", "CREATE", "DESCRIBE"):
        assert allowed(SUPPRESSION, operation, "TOPIC", SETTINGS.suppression_dlq_topic)
    for operation in ("READ", "WRITE", "CREATE", "DESCRIBE"):
        assert allowed(SUPPRESSION, operation, "TOPIC", SETTINGS.topic_registers)
    writers = {principal for principal in SCRAM_USERS if allowed(principal, "WRITE", "TOPIC", SETTINGS.topic_registers)}
    assert writers == {SUPPRESSION, TOOLS}
    assert allowed(SUPPRESSION, "IDEMPOTENT_WRITE", "CLUSTER")


def test_tools_may_use_any_topic_group_and_transaction_but_not_change_the_acls() -> None:
    test_topic = "t1f2e3d4c.consent.changes"  # the tests' random prefixes
    for operation in ("CREATE", "WRITE", "READ", "DELETE", "DESCRIBE", "DESCRIBE_CONFIGS", "ALTER_CONFIGS"):
        assert allowed(TOOLS, operation, "TOPIC", test_topic)
        assert allowed(TOOLS, operation, "TOPIC", SETTINGS.topic_changes)
    assert allowed(TOOLS, "READ", "GROUP", "t1f2e3d4c.marketing")
    assert allowed(TOOLS, "WRITE", "TRANSACTIONAL_ID", "bench-tx")
    for operation in ("CREATE", "DESCRIBE", "IDEMPOTENT_WRITE"):
        assert allowed(TOOLS, operation, "CLUSTER")
    assert not allowed(TOOLS, "ALTER", "CLUSTER")  # creating and deleting ACLs
    assert not allowed(TOOLS, "ALTER_CONFIGS", "CLUSTER")


def test_the_benchmark_listener_s_anonymous_clients_touch_only_the_floor_s_topics() -> None:
    platform_topics = (
        *CONTRACT,
        SETTINGS.topic_registers,
        SETTINGS.suppression_dlq_topic,
        dead_letter_topic(DOMAINS["marketing"].group(SETTINGS)),
    )
    for operation in EVERY_OPERATION:
        for topic in platform_topics:
            assert not allowed(ANONYMOUS, operation, "TOPIC", topic)
        assert not allowed(ANONYMOUS, operation, "GROUP", "samtykke.marketing")
        assert not allowed(ANONYMOUS, operation, "CLUSTER")
    for operation in ("CREATE", "WRITE", "READ", "DELETE"):
        assert allowed(ANONYMOUS, operation, "TOPIC", "bench-floor-1a2b3c4d")  # benchmarks/floor.py


def test_names_follow_the_settings() -> None:
    settings = Settings(
        topic_changes="staging.consent.changes",
        topic_subjects="staging.consent.subjects",
        topic_watermarks="staging.consent.watermarks",
        topic_registers="staging.consent.registers",
        projection_group_prefix="staging",
        suppression_dlq_topic="staging.suppression.dlq",
    )
    rules = acl_rules(settings)
    for topic in ("staging.consent.changes", "staging.consent.subjects", "staging.consent.watermarks"):
        assert allowed(CONSENT, "WRITE", "TOPIC", topic, rules)
        assert allowed(MARKETING, "READ", "TOPIC", topic, rules)
    assert not allowed(MARKETING, "READ", "TOPIC", "consent.changes", rules)
    assert not allowed(MARKETING, "READ", "TOPIC", "staging.consent.changes-other", rules)  # literal names
    assert allowed(MARKETING, "READ", "GROUP", "staging.marketing", rules)
    assert allowed(MARKETING, "WRITE", "TOPIC", "staging.marketing.dlq", rules)
    assert allowed(SUPPRESSION, "WRITE", "TOPIC", "staging.suppression.dlq", rules)
    assert allowed(SUPPRESSION, "WRITE", "TOPIC", "staging.consent.registers", rules)
    assert not allowed(SUPPRESSION, "WRITE", "TOPIC", "samtykke.suppression.dlq", rules)


def test_rendering_is_one_line_per_binding_in_the_form_the_broker_tool_reads() -> None:
    lines = render(RULES)
    assert "acl\tUser:consent\tTOPIC\tLITERAL\tconsent.changes.v2\tWRITE" in lines
    assert "acl\tUser:projector-marketing\tTOPIC\tLITERAL\tconsent.watermarks\tREAD" in lines
    assert "acl\tUser:consent\tCLUSTER\tLITERAL\tkafka-cluster\tIDEMPOTENT_WRITE" in lines
    assert "acl\tUser:projector-marketing\tGROUP\tLITERAL\tsamtykke.marketing\tREAD" in lines
    assert "acl\tUser:suppression\tTOPIC\tLITERAL\tsamtykke.suppression.dlq\tCREATE" in lines
    assert "acl\tUser:ANONYMOUS\tTOPIC\tPREFIXED\tbench-floor-\tWRITE" in lines
    assert len(lines) == sum(len(rule.operations) for rule in RULES) == len(set(lines))
    assert all(len(line.split("\t")) == 6 for line in lines)


def test_rendering_drops_repeats_and_refuses_what_the_tool_could_not_read() -> None:
    rule = AclRule(CONSENT, "TOPIC", "LITERAL", "x", ("READ", "READ"))
    assert render([rule, rule]) == ["acl\tUser:consent\tTOPIC\tLITERAL\tx\tREAD"]
    with pytest.raises(ValueError, match="tab"):
        render([AclRule(CONSENT, "TOPIC", "LITERAL", "a\tb", ("READ",))])
    with pytest.raises(ValueError, match="empty"):
        render([AclRule(CONSENT, "TOPIC", "PREFIXED", "", ("READ",))])
    with pytest.raises(ValueError, match="kafka-cluster"):
        render([AclRule(CONSENT, "CLUSTER", "LITERAL", "other", ("IDEMPOTENT_WRITE",))])
