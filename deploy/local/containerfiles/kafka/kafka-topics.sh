#!/bin/sh
# Kafka's topic tool (what the apache/kafka image's /opt/kafka/bin/kafka-topics.sh runs):
# docker-compose.yml's health check calls it.
exec java -Xmx128m -Dlog4j2.configurationFile=/opt/kafka/log4j2.properties \
    -cp '/opt/kafka/libs/*' org.apache.kafka.tools.TopicCommand "$@"
