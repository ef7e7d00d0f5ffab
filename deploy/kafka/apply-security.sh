#!/bin/sh
# Run once by the `kafka-security` service after the broker is healthy: gives every principal its
# SCRAM-SHA-512 login and adds the ACLs of deploy/kafka/acls.tsv. It connects to the broker's BROKER
# listener with the broker's own certificate (a super user), so it needs no login of its own.
#
# The password of principal `projector-marketing` comes from SCRAM_PASSWORD_PROJECTOR_MARKETING (upper
# case, `-` as `_`): docker-compose.yml fills these from the same variables the services log in with.
# Passwords may not hold `,`, `[`, `]` or `=` (kafka-configs' syntax). Idempotent: a user is upserted,
# an ACL that exists is left as it is. An ACL removed from acls.tsv stays on the broker until it is
# removed by hand (kafka-acls.sh --remove) or the kafka-data volume is made anew.
set -eu

BOOTSTRAP=${BOOTSTRAP:-kafka:9094}
CONFIG=${ADMIN_CONFIG:-/etc/kafka/tls/admin.properties}
ACLS=${ACL_FILE:-/samtykke/acls.tsv}
BIN=${TOOLS_BIN:-/opt/kafka/bin}
USERS="consent projector-marketing projector-analytics projector-customer-service suppression tools"

for user in $USERS; do
  variable="SCRAM_PASSWORD_$(printf '%s' "$user" | tr 'a-z-' 'A-Z_')"
  password=$(printenv "$variable" || true)
  if [ -z "$password" ]; then
    echo "kafka-security: $variable is not set" >&2
    exit 1
  fi
  "$BIN/kafka-configs.sh" --bootstrap-server "$BOOTSTRAP" --command-config "$CONFIG" --alter \
    --entity-type users --entity-name "$user" --add-config "SCRAM-SHA-512=[password=$password]"
done

# acls.tsv: `acl<TAB>User:<name><TAB>type<TAB>pattern<TAB>name<TAB>OPERATION`, one binding a line.
# One kafka-acls.sh run per resource, with every operation the principal gets on it.
grep -v '^#' "$ACLS" | awk -F '\t' '
  function pascal(operation,   parts, n, i, out) {
    n = split(tolower(operation), parts, "_")
    for (i = 1; i <= n; i++) out = out toupper(substr(parts[i], 1, 1)) substr(parts[i], 2)
    return out
  }
  $1 == "acl" {
    key = $2 "\t" $3 "\t" $4 "\t" $5
    if (!(key in operations)) order[++count] = key
    operations[key] = operations[key] " " pascal($6)
  }
  END { for (i = 1; i <= count; i++) print order[i] "\t" operations[order[i]] }
' | while IFS="$(printf '\t')" read -r principal type pattern name operations; do
  case "$type" in
    TOPIC) resource="--topic $name" ;;
    GROUP) resource="--group $name" ;;
    TRANSACTIONAL_ID) resource="--transactional-id $name" ;;
    CLUSTER) resource="--cluster" ;;
    *) echo "kafka-security: unknown resource type $type" >&2; exit 1 ;;
  esac
  flags=""
  for operation in $operations; do flags="$flags --operation $operation"; done
  echo "kafka-security: $principal may$flags on $type $name ($pattern)"
  # `set -f`: a resource named `*` is the wildcard, not a file pattern
  set -f
  # shellcheck disable=SC2086 # resource and flags are lists of options
  "$BIN/kafka-acls.sh" --bootstrap-server "$BOOTSTRAP" --command-config "$CONFIG" --add \
    --allow-principal "$principal" --resource-pattern-type "$(printf '%s' "$pattern" | tr 'A-Z' 'a-z')" \
    $resource $flags > /dev/null
  set +f
done
echo "kafka-security: users and ACLs applied"
