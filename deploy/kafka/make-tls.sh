#!/bin/sh
# TLS material of the compose broker, made once into the kafka-tls and kafka-ca volumes by the one-shot
# `kafka-tls` service (the apache/kafka image, for its keytool), as services/samtykke/devstack/kafka_tls.py
# makes it for the local stack:
#
#   /etc/kafka/tls/ca.p12          the local CA (EC P-256), used only to sign the broker's certificate
#   /etc/kafka/tls/broker.p12      the broker's key and certificate, CN=samtykke-kafka-broker, naming
#                                  kafka, localhost and 127.0.0.1: it serves every listener and is the
#                                  client certificate of the broker's own traffic and of the admin tools
#                                  (a super user)
#   /etc/kafka/tls/truststore.p12  the CA alone: the broker's own TLS clients must trust its certificate
#   /etc/kafka/tls/admin.properties  how the admin tools connect to the BROKER listener (healthcheck,
#                                  kafka-security)
#   /etc/kafka/ca/ca.pem           the CA certificate, all the samtykke services get (read-only)
#
# Every store is locked with STORE_PASSWORD. Idempotent: material that opens with the current password
# and names the current hosts is kept, anything else is made anew (a new CA as well; the services read
# ca.pem at start, so restart them after that).
set -eu

TLS=/etc/kafka/tls
CA=/etc/kafka/ca
NAMES="dns:kafka,dns:localhost,ip:127.0.0.1"
SUBJECT="CN=samtykke-kafka-broker"
KEY="-keyalg EC -groupname secp256r1"
export STORE_PASSWORD

opens() {
  keytool -list -keystore "$1" -storepass:env STORE_PASSWORD >/dev/null 2>&1
}

current() {
  [ -s "$CA/ca.pem" ] && [ -s "$TLS/broker.names" ] && [ "$(cat "$TLS/broker.names")" = "$NAMES" ] \
    && opens "$TLS/ca.p12" && opens "$TLS/broker.p12" && opens "$TLS/truststore.p12"
}

make_material() {
  rm -f "$TLS"/ca.p12 "$TLS"/broker.p12 "$TLS"/truststore.p12 "$TLS"/broker.names "$TLS"/broker.csr "$TLS"/broker.crt
  # shellcheck disable=SC2086 # KEY is a list of options
  keytool -genkeypair -alias ca $KEY -dname "CN=samtykke compose development CA" \
    -ext bc:c=ca:true,pathlen:0 -ext ku:c=keyCertSign,cRLSign -validity 3650 \
    -storetype PKCS12 -keystore "$TLS/ca.p12" -storepass:env STORE_PASSWORD
  keytool -exportcert -rfc -alias ca -keystore "$TLS/ca.p12" -storepass:env STORE_PASSWORD -file "$CA/ca.pem"
  # shellcheck disable=SC2086
  keytool -genkeypair -alias broker $KEY -dname "$SUBJECT" -validity 825 \
    -storetype PKCS12 -keystore "$TLS/broker.p12" -storepass:env STORE_PASSWORD
  keytool -certreq -alias broker -keystore "$TLS/broker.p12" -storepass:env STORE_PASSWORD -file "$TLS/broker.csr"
  # server of every listener, client of the CONTROLLER and BROKER listeners
  keytool -gencert -alias ca -keystore "$TLS/ca.p12" -storepass:env STORE_PASSWORD \
    -infile "$TLS/broker.csr" -outfile "$TLS/broker.crt" -rfc -validity 825 \
    -ext "SAN=$NAMES" -ext ku:c=digitalSignature -ext eku=serverAuth,clientAuth
  # the CA first, so that the broker's chain is complete in its keystore
  keytool -importcert -noprompt -alias ca -file "$CA/ca.pem" -keystore "$TLS/broker.p12" -storepass:env STORE_PASSWORD
  keytool -importcert -alias broker -file "$TLS/broker.crt" -keystore "$TLS/broker.p12" -storepass:env STORE_PASSWORD
  keytool -importcert -noprompt -alias ca -file "$CA/ca.pem" \
    -storetype PKCS12 -keystore "$TLS/truststore.p12" -storepass:env STORE_PASSWORD
  rm -f "$TLS/broker.csr" "$TLS/broker.crt"
  # written last: its presence says the material is complete
  printf '%s' "$NAMES" > "$TLS/broker.names"
}

if current; then
  echo "kafka-tls: keeping the TLS material in $TLS"
else
  echo "kafka-tls: making a CA and the broker's certificate for $NAMES"
  make_material
fi

# rewritten every time, so a changed STORE_PASSWORD reaches the admin tools
cat > "$TLS/admin.properties" <<PROPERTIES
security.protocol=SSL
ssl.keystore.type=PKCS12
ssl.keystore.location=$TLS/broker.p12
ssl.keystore.password=$STORE_PASSWORD
ssl.key.password=$STORE_PASSWORD
ssl.truststore.type=PKCS12
ssl.truststore.location=$TLS/truststore.p12
ssl.truststore.password=$STORE_PASSWORD
PROPERTIES

# the broker and the admin tools run as the image's appuser; the samtykke services (another image,
# another user) only read the CA certificate
chown -R appuser:appuser "$TLS"
chmod 700 "$TLS"
chmod 600 "$TLS"/*
chmod 755 "$CA"
chmod 644 "$CA/ca.pem"
