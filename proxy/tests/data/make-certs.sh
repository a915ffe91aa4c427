#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Regenerates the certificates the TLS self-test loads. They are self-signed, valid for a
# century so the test never starts failing on a date, and their keys protect nothing.
#   default.*  ECDSA P-256, SAN DNS:default.test (the listener's default certificate)
#   wild.*     ECDSA P-256, SAN DNS:*.wild.test, DNS:wild.test (wildcard SNI)
#   cn.*       RSA 2048, CN=cn-only.test and no subjectAltName (the CN fallback, ECDHE-RSA)
#   exact.*    ECDSA P-256, SAN DNS:exact.wild.test (an exact name beats an earlier wildcard)
set -eu
cd "$(dirname "$0")"
ec="-newkey ec -pkeyopt ec_paramgen_curve:P-256"
openssl req -x509 $ec -nodes -days 36500 -subj /CN=default.test \
    -addext subjectAltName=DNS:default.test -keyout default.key -out default.pem
openssl req -x509 $ec -nodes -days 36500 -subj /CN=wild.test \
    -addext 'subjectAltName=DNS:*.wild.test,DNS:wild.test' -keyout wild.key -out wild.pem
openssl req -x509 -newkey rsa:2048 -nodes -days 36500 -subj /CN=cn-only.test \
    -keyout cn.key -out cn.pem
openssl req -x509 $ec -nodes -days 36500 -subj /CN=exact.wild.test \
    -addext subjectAltName=DNS:exact.wild.test -keyout exact.key -out exact.pem
