#!/bin/sh
# A private CA and one node certificate (scheduler, workers and client alike), for the
# compose recipe. A lab with its own PKI issues these instead.
set -eu
out=${1:-certs}
mkdir -p "$out"
cd "$out"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 365 \
  -subj "/CN=exhibit CA" -keyout ca.key -out ca.pem
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -subj "/CN=exhibit node" -keyout node.key -out node.csr
printf 'subjectAltName=DNS:scheduler,DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' > ext.cnf
openssl x509 -req -in node.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 365 \
  -extfile ext.cnf -out node.pem
rm -f node.csr ext.cnf
chmod 600 ca.key node.key
