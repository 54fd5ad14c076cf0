# shellcheck shell=bash
# The secured broker of scripts/kafka.sh (sourced by it, not run): with
# KAFKA_SECURITY=sasl_ssl, clients speak SASL_SSL (SCRAM-SHA-512 over TLS) and
# may do only what ACLs allow them.
#
# - Users: `admin` (the broker's own user, the only super user) and the
#   service's user (KAFKA_SERVICE_USER, default chat), added when the storage
#   is formatted, with passwords generated then and kept in the data dir.
# - TLS: a CA and a certificate for 127.0.0.1 and localhost, made with openssl
#   (the broker reads PEM files: ssl.keystore.type=PEM).
# - ACLs: StandardAuthorizer, nothing allowed without an ACL; after start,
#   `manage.py kafka_acls` (as admin) allows the service's user its own topics
#   and consumer groups only.
# - The controller listener stays on loopback with SASL PLAIN (SCRAM users live
#   in the metadata log, which a controller reads only after it started).
#
# The secured broker keeps its data apart (default .run/kafka-secure), so one
# checkout switches between the two modes; a data dir formatted in one mode is
# refused in the other. Its security/ folder (readable by its owner only) holds:
#   ca.pem                       the CA clients trust (KAFKA_SSL_CA_LOCATION)
#   ca.key, broker.pem           the CA's key; the broker's key and certificate
#   admin.password, USER.password
#   service.env                  the service's settings: `kafka.sh client-env` prints them
#   client.properties            Kafka's CLI as the service's user (--command-config)
#   admin.properties             Kafka's CLI as admin (ACLs, users, anything)
#   admin.librdkafka.properties  the same for librdkafka clients (kcat -F)
# No password is ever written to a log or passed on a command line.

KAFKA_SECURITY=${KAFKA_SECURITY:-plaintext}
KAFKA_SERVICE_USER=${KAFKA_SERVICE_USER:-chat}
case $KAFKA_SECURITY in
  plaintext) KAFKA_DEFAULT_DATA_DIR=$ROOT_DIR/.run/kafka ;;
  sasl_ssl) KAFKA_DEFAULT_DATA_DIR=$ROOT_DIR/.run/kafka-secure ;;
  *) die "KAFKA_SECURITY must be plaintext or sasl_ssl, not '$KAFKA_SECURITY'" ;;
esac
[[ $KAFKA_SERVICE_USER =~ ^[A-Za-z0-9_.-]+$ && $KAFKA_SERVICE_USER != admin ]] ||
  die "KAFKA_SERVICE_USER must be a plain name other than admin, not '$KAFKA_SERVICE_USER'"
SCRAM_MECHANISM=SCRAM-SHA-512
# Arguments of the storage format: the SCRAM users (security_prepare sets them).
SECURITY_FORMAT_ARGS=()

security_secured() { [[ $KAFKA_SECURITY == sasl_ssl ]]; }
security_dir() { echo "$KAFKA_DATA_DIR/security"; }

# The file of librdkafka settings the readiness probe adds (as admin), or nothing.
security_probe_rdkafka_properties() { if security_secured; then echo "$(security_dir)/admin.librdkafka.properties"; fi; }
# The file of Kafka's CLI settings the Java probe adds (as admin), or nothing.
security_probe_java_properties() { if security_secured; then echo "$(security_dir)/admin.properties"; fi; }

# Refuse a data dir formatted in the other mode: its users and listeners would not match.
security_check_mode() {
  local marker=$KAFKA_DATA_DIR/security.mode formatted=""
  [[ -d $KAFKA_DATA_DIR ]] && formatted=$(find "$KAFKA_DATA_DIR" -name meta.properties -print -quit)
  if [[ -n $formatted ]]; then
    local was=plaintext
    [[ -f $marker ]] && was=$(<"$marker")
    [[ $was == "$KAFKA_SECURITY" ]] ||
      die "$KAFKA_DATA_DIR holds a broker formatted with KAFKA_SECURITY=$was, not $KAFKA_SECURITY: leave KAFKA_DATA_DIR unset (each mode has its own default) or remove that directory"
  fi
  mkdir -p "$KAFKA_DATA_DIR"
  echo "$KAFKA_SECURITY" >"$marker"
  if security_secured && [[ -n $formatted && ! -s $(security_dir)/admin.password ]]; then
    die "$KAFKA_DATA_DIR is formatted but its passwords are gone ($(security_dir)): remove that directory to start anew"
  fi
}

# A password of 64 hex digits, made once and kept in a file of its owner's only.
security_password() {
  local file
  file="$(security_dir)/$1.password"
  [[ -s $file ]] || (umask 077 && openssl rand -hex 32 >"$file")
  tr -d '\n' <"$file"
}

# A CA and the broker's key and certificate (for 127.0.0.1 and localhost, as
# clients check the broker's name: librdkafka and Java both verify it by default).
security_make_certificates() {
  local dir
  dir=$(security_dir)
  [[ -s $dir/ca.pem && -s $dir/broker.pem ]] && return 0
  log "making a CA and the broker's certificate (127.0.0.1, localhost) in $dir"
  local err=$dir/openssl.err
  (
    umask 077 && cd "$dir" &&
      openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=chat-backend local Kafka CA" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
        -keyout ca.key -out ca.pem &&
      openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout broker.key -out broker.csr &&
      printf '%s\n' subjectAltName=IP:127.0.0.1,DNS:localhost basicConstraints=CA:FALSE \
        keyUsage=digitalSignature,keyEncipherment extendedKeyUsage=serverAuth,clientAuth >broker.ext &&
      openssl x509 -req -in broker.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 825 \
        -extfile broker.ext -out broker.crt &&
      cat broker.key broker.crt >broker.pem &&
      rm -f broker.key broker.csr broker.ext broker.crt ca.srl
  ) >"$err" 2>&1 || { show_log_tail "$err" 20; die "openssl could not make the certificates"; }
  rm -f "$err"
  chmod 644 "$dir/ca.pem" # the CA's certificate is public
}

# Kafka's CLI settings for USER with PASSWORD.
security_java_properties() {
  local ca
  ca="$(security_dir)/ca.pem"
  cat <<EOF
security.protocol=SASL_SSL
sasl.mechanism=$SCRAM_MECHANISM
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="$1" password="$2";
ssl.truststore.type=PEM
ssl.truststore.location=$ca
EOF
}

# Before the broker starts: mode check, users, certificates, and the clients' files
# (rewritten on every start, as the port may change).
security_prepare() {
  security_check_mode
  security_secured || return 0
  command -v openssl >/dev/null || apt_install openssl
  local dir admin_password service_password
  dir=$(security_dir)
  (umask 077 && mkdir -p "$dir") && chmod 700 "$dir"
  admin_password=$(security_password admin)
  service_password=$(security_password "$KAFKA_SERVICE_USER")
  security_make_certificates
  (
    umask 077
    # The SCRAM users, in a file Java's launcher reads (@file), not on the command line.
    printf '%s\n' --add-scram "$SCRAM_MECHANISM=[name=admin,password=$admin_password]" \
      --add-scram "$SCRAM_MECHANISM=[name=$KAFKA_SERVICE_USER,password=$service_password]" >"$dir/format.args"
    security_java_properties "$KAFKA_SERVICE_USER" "$service_password" >"$dir/client.properties"
    security_java_properties admin "$admin_password" >"$dir/admin.properties"
    cat >"$dir/admin.librdkafka.properties" <<EOF
security.protocol=SASL_SSL
sasl.mechanism=$SCRAM_MECHANISM
sasl.username=admin
sasl.password=$admin_password
ssl.ca.location=$dir/ca.pem
EOF
    # The project's own settings (see .env.example), for run.sh and the tests.
    cat >"$dir/service.env" <<EOF
KAFKA_BOOTSTRAP_SERVERS=$BOOTSTRAP
KAFKA_SECURITY_PROTOCOL=SASL_SSL
KAFKA_SASL_MECHANISM=$SCRAM_MECHANISM
KAFKA_SASL_USERNAME=$KAFKA_SERVICE_USER
KAFKA_SASL_PASSWORD=$service_password
KAFKA_SSL_CA_LOCATION=$dir/ca.pem
EOF
  )
  SECURITY_FORMAT_ARGS=("@$dir/format.args")
}

# Turn a broker's server.properties (as kafka.sh writes it) into the secured
# one: its PLAINTEXT listener becomes SASL_SSL, and the security settings follow.
security_write_config() {
  security_secured || return 0
  local config=$1 dir admin_password
  dir=$(security_dir)
  admin_password=$(security_password admin)
  chmod 600 "$config" # it holds the admin's password
  sed -i -e '/^\(advertised\.\)\?listeners=/s#\([=,]\)PLAINTEXT://#\1SASL_SSL://#g' \
    -e '/^inter\.broker\.listener\.name=/d' -e '/^listener\.security\.protocol\.map=/d' "$config"
  cat >>"$config" <<EOF

# SASL_SSL with ACLs (scripts/kafka/security.sh): clients and brokers speak
# SCRAM-SHA-512 over TLS; the controller listener stays on loopback, with PLAIN.
listener.security.protocol.map=CONTROLLER:SASL_PLAINTEXT,SASL_SSL:SASL_SSL
inter.broker.listener.name=SASL_SSL
sasl.enabled.mechanisms=$SCRAM_MECHANISM
sasl.mechanism.inter.broker.protocol=$SCRAM_MECHANISM
sasl.mechanism.controller.protocol=PLAIN
listener.name.sasl_ssl.sasl.enabled.mechanisms=$SCRAM_MECHANISM
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$admin_password";
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="$admin_password" user_admin="$admin_password";
ssl.keystore.type=PEM
ssl.keystore.location=$dir/broker.pem
ssl.truststore.type=PEM
ssl.truststore.location=$dir/ca.pem
# Nothing is allowed without an ACL, but to admin.
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:admin
allow.everyone.if.no.acl.found=false
EOF
}

# Once the broker answers: allow the service's user its topics and groups
# (idempotent), as admin, through the project's own command.
security_after_start() {
  security_secured || return 0
  local dir out rc=0
  dir=$(security_dir)
  rm -f "$dir/format.args" # the storage is formatted
  # Variables, not arguments: no password on a command line. DJANGO_DEBUG=1:
  # a one-shot command serves nothing and needs no secret key.
  out=$(
    while IFS='=' read -r name value; do export "$name=$value"; done <"$dir/service.env"
    unset KAFKA_SSL_CERTIFICATE_LOCATION KAFKA_SSL_KEY_LOCATION KAFKA_SSL_KEY_PASSWORD
    export KAFKA_SASL_USERNAME=admin KAFKA_SASL_PASSWORD
    KAFKA_SASL_PASSWORD=$(security_password admin)
    DJANGO_DEBUG=1 "$PYTHON" "$ROOT_DIR/manage.py" kafka_acls --user "$KAFKA_SERVICE_USER" 2>&1
  ) || rc=$?
  if ((rc != 0)); then
    printf '%s\n' "$out" >&2
    die "could not grant User:$KAFKA_SERVICE_USER its ACLs (manage.py kafka_acls)"
  fi
  log "SASL_SSL: User:$KAFKA_SERVICE_USER may use the service's topics and consumer groups; its settings: 'kafka.sh client-env', CLI: --command-config $dir/client.properties (or admin.properties)"
}

# The settings the service needs for this broker, as NAME=value lines.
security_client_env() {
  if ! security_secured; then
    echo "KAFKA_BOOTSTRAP_SERVERS=$BOOTSTRAP"
    return 0
  fi
  local file
  file="$(security_dir)/service.env"
  [[ -s $file ]] || die "no $file yet: start the broker first (KAFKA_SECURITY=sasl_ssl scripts/kafka.sh start)"
  cat "$file"
}
