#!/usr/bin/env bash
# Fetches Apache Kafka (KRaft broker) and its runtime jars from Maven Central into
# $HOME/.cache/thanos-bridge-ci/kafka-<version>/libs and prints that folder. Kafka's POMs pull
# slf4j 1.7 (a broker with no logging), so slf4j 2 and log4j2 are pinned here.
set -euo pipefail
KAFKA_VERSION=4.1.1
CACHE="${HOME}/.cache/thanos-bridge-ci"
LIBS="$CACHE/kafka-$KAFKA_VERSION/libs"
if [ -f "$LIBS/.complete" ]; then echo "$LIBS"; exit 0; fi
# One download at a time: a second caller (a parallel test) waits for the first one.
mkdir -p "$CACHE"
exec 9>"$CACHE/kafka.lock"
flock 9
if [ -f "$LIBS/.complete" ]; then echo "$LIBS"; exit 0; fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>thanos-bridge.ci</groupId><artifactId>kafka-runtime</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId><version>2.0.17</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j2-impl</artifactId><version>2.25.2</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>2.25.2</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-api</artifactId><version>2.25.2</version></dependency>
  </dependencies>
</project>
POM
rm -rf "$LIBS"; mkdir -p "$LIBS"
(cd "$work" && mvn -q -B -Dmaven.repo.local="$CACHE/m2" dependency:copy-dependencies \
  -DincludeScope=runtime -DoutputDirectory="$LIBS") >&2
rm -f "$LIBS"/slf4j-api-1.*.jar "$LIBS"/slf4j-reload4j-*.jar "$LIBS"/reload4j-*.jar
touch "$LIBS/.complete"
echo "$LIBS"
