#!/usr/bin/env bash
# Creates a throwaway test CA and a server certificate for 127.0.0.1 / localhost (plus any extra
# names given) with the openssl CLI. Test use only: the keys are unencrypted.
#
#   bash tests/gateway/make_test_ca.sh DIR [EXTRA_NAME...]
#
# Writes DIR/ca.pem, DIR/ca.key, DIR/server.pem, DIR/server.key (keys 0600). An EXTRA_NAME that
# parses as an IPv4/IPv6 address becomes an IP SAN, anything else a DNS SAN.
# Use: mock_provider.mjs --tls-cert DIR/server.pem --tls-key DIR/server.key, and point clients at
# DIR/ca.pem (NODE_EXTRA_CA_CERTS=DIR/ca.pem for Node; curl --cacert DIR/ca.pem).
set -euo pipefail

if [ $# -lt 1 ]; then
  echo "usage: $0 DIR [EXTRA_NAME...]" >&2
  exit 2
fi
dir=$1
shift
mkdir -p "$dir"

san="DNS:localhost,IP:127.0.0.1,IP:::1"
for name in "$@"; do
  if [[ $name =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ || $name == *:* ]]; then
    san+=",IP:$name"
  else
    san+=",DNS:$name"
  fi
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
umask 077

openssl ecparam -name prime256v1 -genkey -noout -out "$tmp/ca.key" 2>/dev/null
openssl req -x509 -new -key "$tmp/ca.key" -sha256 -days 365 -subj "/CN=Gatehouse test CA" \
  -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -addext "subjectKeyIdentifier=hash" \
  -out "$tmp/ca.pem"

openssl ecparam -name prime256v1 -genkey -noout -out "$tmp/server.key" 2>/dev/null
openssl req -new -key "$tmp/server.key" -subj "/CN=localhost" -out "$tmp/server.csr"
cat >"$tmp/server.ext" <<EOF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
subjectAltName=$san
EOF
openssl x509 -req -in "$tmp/server.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" -CAcreateserial \
  -days 365 -sha256 -extfile "$tmp/server.ext" -out "$tmp/server.pem" 2>/dev/null

openssl verify -CAfile "$tmp/ca.pem" "$tmp/server.pem" >/dev/null
chmod 0644 "$tmp/ca.pem" "$tmp/server.pem"
mv -f "$tmp/ca.key" "$tmp/ca.pem" "$tmp/server.key" "$tmp/server.pem" "$dir/"
echo "make_test_ca: wrote $dir/{ca.pem,ca.key,server.pem,server.key} (SAN $san)"
