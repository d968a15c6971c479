#!/usr/bin/env bash
# Resolve the JVM jars the Spark jobs need (the Delta Lake connector and its
# runtime dependencies, as conf/jars/pom.xml states them) from Maven Central
# into ./jars, with mvn, so that it honours the machine's Maven settings
# (mirrors, proxies). Used by `make install` and the Docker image; nothing
# is fetched at run time. Re-running replaces the folder's contents.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${1:-jars}"
command -v mvn >/dev/null || { echo "install_jars: mvn is not on PATH (Debian: apt-get install maven)" >&2; exit 1; }
tmp="$(mktemp -d "${target%/}.tmp.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
mvn -q -B -Dstyle.color=never -f conf/jars/pom.xml dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$(cd "$tmp" && pwd)"
ls "$tmp"/delta-spark_*.jar >/dev/null
rm -rf "$target"
mv "$tmp" "$target"
trap - EXIT
echo "install_jars: $(ls "$target" | wc -l) jars in $target: $(ls "$target" | tr '\n' ' ')"
