#!/bin/sh
# Builds ./users with no network, from Debian 12's packages alone: the stubs by
# protoc-gen-go and protoc-gen-go-grpc (through buf, the repository's
# devDependency), the modules from the golang-*-dev sources in
# /usr/share/gocode, laid out as vendor/ (symbolic links). With the module
# proxy at hand, `npx buf generate && go mod tidy && go build -o users .` does
# the same.
set -eu
cd "$(dirname "$0")"

npx buf generate

rm -rf vendor
mkdir vendor
for dir in /usr/share/gocode/src/*; do ln -s "$dir" vendor/; done
# The go command checks that vendor/modules.txt lists each module go.mod
# requires, at the version it requires.
awk '/^require \(/ { inside = 1; next }
     inside && /^\)/ { inside = 0 }
     inside && NF == 2 { print "# " $1 " " $2; print "## explicit" }' go.mod >vendor/modules.txt

GOFLAGS=-mod=vendor GOPROXY=off go build -o users .
